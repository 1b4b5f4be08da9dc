"""GPU tool simulators for the rehearsal lab (stdlib only; installed into lab hosts).

Baked into the lab image at /opt/glm5lab/glm5lab_gpu and run through /opt/glm5lab/bin/gpusim,
which dispatches on the name it was called by (nvidia-smi, amd-smi, rocm-smi, rocminfo,
glm5lab-boot, glm5lab-set-driver). Locally: ``python -m glm5cluster.lab.sim.gpu TOOL ARGS``.
"""
