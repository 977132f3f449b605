# A warm notebook server of the Sluice notebooks service (internal/spawner/pool.go).
#
# argv: zygote.py <fifo> <zygote id>. It imports the Jupyter Notebook server application and what the
# server imports while it starts, then opens <fifo> for reading (which tells the spawner it is ready) and
# blocks until the spawner writes one JSON launch spec and closes the FIFO:
#
#   {"argv": [...], "env": {...}, "cwd": "...", "log": "...", "uid": 1001, "gid": 1001}
#
# It then sends its output to "log", drops to uid/gid (when given; only root can), enters cwd, replaces its
# environment by env, and runs the Jupyter Notebook main with argv[1:], exactly as `jupyter notebook`
# would after its exec of jupyter-notebook. No code of the notebook's user runs before the drop. An empty
# read (the spawner closed the FIFO without a spec, or died) ends the process.
import os
import sys

fifo_path, zygote_id = sys.argv[1], sys.argv[2]

import ctypes
import importlib
import json
import site

from notebook import notebookapp

# Modules the server imports lazily while it initialises (handlers, IPython paths, contents managers):
# importing them here is what makes a claimed server start fast. Missing ones are skipped (other
# Jupyter versions).
for _name in (
    "IPython",
    "IPython.paths",
    "jinja2.ext",
    "nest_asyncio",
    "jupyter_core.migrate",
    "jupyter_server.services.contents.manager",
    "jupyter_server.contents.services.managers",
    "notebook.tree.handlers",
    "notebook.view.handlers",
    "notebook.notebook.handlers",
    "notebook.nbconvert.handlers",
    "notebook.bundler.handlers",
    "notebook.kernelspecs.handlers",
    "notebook.edit.handlers",
    "notebook.services.api.handlers",
    "notebook.services.config.handlers",
    "notebook.services.contents.handlers",
    "notebook.services.sessions.handlers",
    "notebook.services.nbconvert.handlers",
    "notebook.services.security.handlers",
    "notebook.services.shutdown",
    "notebook.terminal",
):
    try:
        importlib.import_module(_name)
    except Exception:
        pass

parent = os.getppid()
with open(fifo_path, "rb") as f:
    data = f.read()
if not data:
    sys.exit(0)
spec = json.loads(data)

fd = os.open(spec["log"], os.O_WRONLY | os.O_APPEND)
sys.stdout.flush()
sys.stderr.flush()
os.dup2(fd, 1)
os.dup2(fd, 2)
os.close(fd)

uid, gid = spec.get("uid"), spec.get("gid")
if uid is not None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        sys.exit("zygote: could not change to uid %d gid %d" % (uid, gid))
    libc = ctypes.CDLL(None, use_errno=True)
    # A change of credentials clears the parent-death signal and the dumpable flag; restore both as an
    # exec under the new credentials would have them.
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, 1
    if os.getppid() != parent:
        os._exit(1)

os.chdir(spec["cwd"])
# The local runtime's process-group marker stays: it lets the service end this server's kernels (which
# leave the process group) after a crash of the service.
keep = {k: os.environ[k] for k in ("SLUICE_PROCESS_GROUP",) if k in os.environ}
os.environ.clear()
os.environ.update(spec["env"])
os.environ.update(keep)

# The user site directory follows the new HOME, as it would for a fresh interpreter.
if site.ENABLE_USER_SITE:
    site.USER_BASE = None
    site.USER_SITE = None
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site):
        site.addsitedir(user_site)

sys.argv = list(spec["argv"])
del f, data, spec, keep, fd
sys.exit(notebookapp.main())
