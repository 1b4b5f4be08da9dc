#!/bin/sh
# glm5cluster lab host image, stage 2 (run once by `docker build`).
set -eu
chmod 0755 /opt/glm5lab/bin/gpusim
for t in nvidia-smi amd-smi rocm-smi rocminfo glm5lab-boot glm5lab-set-driver; do
  ln -sf gpusim "/opt/glm5lab/bin/$t"
done
systemctl enable glm5lab-hostkeys.service glm5lab-gpu.service ssh.service docker.service
# Units that have nothing to do in a container (no consoles, no kernel modules to load).
systemctl mask getty@tty1.service console-getty.service serial-getty@.service \
  systemd-modules-load.service systemd-udevd.service systemd-udev-trigger.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  systemd-remount-fs.service systemd-firstboot.service 2>/dev/null || true
id glm5 >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash glm5
usermod -p '*' glm5   # no password, not locked: key login works, password login cannot
mkdir -p /root/.ssh /home/glm5/.ssh /etc/glm5lab
chmod 0700 /root/.ssh /home/glm5/.ssh
chown glm5:glm5 /home/glm5/.ssh
rm -f /etc/ssh/ssh_host_* /opt/glm5lab/setup.sh
: > /etc/machine-id
