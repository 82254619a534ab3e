"""Writing output files: all or nothing, one file mode.

Every file skcnn writes (model files, bundles, ONNX graphs, checkpoints,
comparison tables) is written to a hidden temporary file in the target's
folder and renamed over the target only once it is complete, so a failed
write (an unsavable parameter, a full disk, Ctrl-C) never destroys a good
file that was there before. The temporary file is created with mode 0666,
which the kernel lowers by the umask, and keeps that mode even when a writer
replaces it (safetensors writes 0600): every file gets the mode a plain
``open(path, "w")`` gives. No umask is read or changed, so threads writing
at once are safe.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_output", "atomic_write", "check_output_path"]


def check_output_path(path, what="file"):
    """``path`` as a Path, if a file can be written there: its folder exists
    and it is not itself a folder (say so before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"Cannot write the {what} to {str(path)!r}: it is a folder; give a file "
            "name inside it."
        )
    if not path.parent.is_dir():
        raise ValueError(
            f"Cannot write the {what} to {str(path)!r}: the folder "
            f"{str(path.parent)!r} does not exist."
        )
    return path


@contextlib.contextmanager
def atomic_output(path, what="file"):
    """Yield a temporary path beside ``path``; on success it replaces
    ``path``, on any error it is removed and ``path`` is left as it was.
    OSErrors name ``path`` (not the hidden temporary file)."""
    path = check_output_path(path, what)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = tmp.stat().st_mode & 0o777
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"Could not write the {what} {str(path)!r}: {exc.strerror or exc}",
        ) from None
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(
            exc.errno,
            f"Could not write the {what} {str(path)!r}: {exc.strerror or exc}",
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path, write, what="file", mode="wb"):
    """Call ``write(f)`` on a file object of a temporary file that replaces
    ``path`` once written and flushed to disk (see :func:`atomic_output`)."""
    with atomic_output(path, what) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)
