"""glm5cluster weights agent: runs ON a node with the tools venv's python (stdlib + huggingface_hub).

Uploaded by the ``weights.tools`` task; driven by ``engine/procedures/weights.py``. Commands:

  list   < request   resolve the revision to a commit, list files with sizes and LFS sha256
  check  < request   which files are verified (stamp: size+mtime; else re-hash), free disk space
  fetch  REQ_FILE    download files from the hub (resume, stall watchdog, retries, verify)
  pull   REQ_FILE    copy files from a peer as it verifies them: one long-lived ssh stream per
                     worker, bytes hashed as they arrive, placed only if they match the hub
  stamp  < request   write the manifest stamp from this run's verified markers
  serve  DIR         the sending side of ``pull`` (stdin/stdout): only verified files of DIR
  gate   DIR         ssh forced command on a source node: only ``serve`` of DIR

The HF token only ever arrives in the environment (``HF_TOKEN``); it is never printed.
State lives in ``<dir>/.glm5cluster/``: ``ready/`` (one marker per verified file, served to
peers), ``partial/`` (resumable partial files, hub or peer), ``progress.json`` and ``agent.log``.

Built from modules: ``files`` (the directory and its state), ``hub`` (list, fetch), ``peer``
(serve, gate, pull), ``cli`` (the command line); ``tasks/agents/__init__.py`` concatenates them,
in ``PARTS`` order, into the one file ``weights.tools`` uploads. Run as modules (tests):
``python -m glm5cluster.tasks.agents.weights CMD ...``.
"""

PARTS = ("files", "hub", "peer", "cli")
