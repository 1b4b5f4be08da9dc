"""The rehearsal lab: simulated GPU hosts (containers with systemd, sshd, docker) on one machine.

Keep this module light: the GPU simulators under ``lab/sim`` are imported by tests as
``glm5cluster.lab.sim.gpu`` and must not pull in the docker SDK.
"""
