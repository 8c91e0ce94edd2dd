"""gRPC stubs generated on demand from ``protos/*.proto``, cached by the protos' content hash.

Nothing generated is committed: the first ``load()`` compiles every proto in the folder with
grpcio-tools into a cache folder named after a hash of the protos (and of the compiler's version),
and later calls reuse it. Change a .proto and the next ``load()`` in a fresh process regenerates.

Example:
    >>> from durable_helpers import stubs
    >>> df = stubs.load("durable_functions")
    >>> df.NewDurableTaskRequest(functionName="HelloSequence").functionName
    'HelloSequence'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import types
from importlib import import_module
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROTO_DIR = PROJECT_ROOT / "protos"
PROTOS_ENV_VAR = "DURABLE_HELPERS_PROTOS"
CACHE_ENV_VAR = "DURABLE_HELPERS_STUBS_CACHE"

__all__ = ["ProtoCompileError", "cache_dir_for", "generate", "load"]


class ProtoCompileError(RuntimeError):
    """protoc rejected a .proto file; the message is protoc's, with file and line."""


def _proto_dir(proto_dir: str | os.PathLike[str] | None) -> Path:
    chosen = Path(proto_dir or os.environ.get(PROTOS_ENV_VAR) or DEFAULT_PROTO_DIR).resolve()
    if not chosen.is_dir() or not any(chosen.glob("*.proto")):
        raise FileNotFoundError(
            f"No .proto files in {chosen}. Pass proto_dir=<folder with your .proto files> or set "
            f"{PROTOS_ENV_VAR}."
        )
    return chosen


def _cache_root(cache_root: str | os.PathLike[str] | None) -> Path:
    if cache_root:
        return Path(cache_root)
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "durable-helpers" / "stubs"


def _fingerprint(proto_dir: Path) -> str:
    import google.protobuf
    import grpc_tools

    digest = hashlib.sha256()
    version = getattr(grpc_tools, "__version__", "") or _grpc_tools_version()
    digest.update(f"grpcio-tools {version}; protobuf {google.protobuf.__version__}\n".encode())
    for proto in sorted(proto_dir.glob("*.proto")):
        digest.update(proto.name.encode() + b"\0" + proto.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _grpc_tools_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


def cache_dir_for(
    proto_dir: str | os.PathLike[str] | None = None,
    cache_root: str | os.PathLike[str] | None = None,
) -> Path:
    """The cache folder the stubs of ``proto_dir`` live in (it may not exist yet).

    Example:
        >>> cache_dir_for().name == cache_dir_for().name  # same protos, same folder
        True
    """
    source = _proto_dir(proto_dir)
    return _cache_root(cache_root) / _fingerprint(source)


def generate(
    proto_dir: str | os.PathLike[str] | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> Path:
    """Compile every ``*.proto`` in ``proto_dir`` into the cache; return the folder.

    Reuses the folder when the protos have not changed (unless ``force``). Raises
    :class:`ProtoCompileError` with protoc's own message when a proto is broken.

    Example:
        >>> (generate() / "durable_functions_pb2_grpc.py").exists()
        True
    """
    source = _proto_dir(proto_dir)
    target = cache_dir_for(source, cache_root)
    if target.is_dir() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        import grpc_tools

        well_known = Path(grpc_tools.__file__).parent / "_proto"
        protos = sorted(p.name for p in source.glob("*.proto"))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{source}",
                f"-I{well_known}",
                f"--python_out={work}",
                f"--pyi_out={work}",
                f"--grpc_python_out={work}",
                *protos,
            ],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise ProtoCompileError(f"protoc could not compile the protos in {source}:\n{message}")
        (work / "PROTOS").write_text(str(source) + "\n")
        if force and target.exists():
            shutil.rmtree(target)
        try:
            work.rename(target)
        except OSError:  # another process got there first with the same content
            if not target.is_dir():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def load(
    name: str,
    proto_dir: str | os.PathLike[str] | None = None,
    cache_root: str | os.PathLike[str] | None = None,
) -> types.ModuleType:
    """Generate (if needed) and import the stubs of ``<name>.proto`` as one module.

    The module has the messages (``<name>_pb2``) and the gRPC stub, servicer and
    ``add_..._to_server`` function (``<name>_pb2_grpc``) side by side.

    Example:
        >>> df = load("durable_functions")
        >>> sorted(n for n in dir(df) if n.startswith("DurableTaskService"))[:2]
        ['DurableTaskService', 'DurableTaskServiceServicer']
    """
    folder = generate(proto_dir, cache_root)
    if not (folder / f"{name}_pb2.py").exists():
        available = sorted(p.name[: -len("_pb2.py")] for p in folder.glob("*_pb2.py"))
        raise ModuleNotFoundError(f"No proto named {name!r}; the protos here are {available}.")
    _activate(folder)
    messages = import_module(f"{name}_pb2")
    services = import_module(f"{name}_pb2_grpc")
    combined = types.ModuleType(f"durable_helpers.stubs.{name}", messages.__doc__)
    combined.__dict__.update({k: v for k, v in vars(messages).items() if not k.startswith("__")})
    combined.__dict__.update({k: v for k, v in vars(services).items() if not k.startswith("__")})
    combined.__file__ = str(folder / f"{name}_pb2.py")
    combined.pb2 = messages  # type: ignore[attr-defined]
    combined.pb2_grpc = services  # type: ignore[attr-defined]
    return combined


def _activate(folder: Path) -> None:
    """Put ``folder`` on sys.path (generated code imports its siblings by top-level name)."""
    entry = str(folder)
    if entry in sys.path:
        return
    stale = {str(p) for p in folder.parent.iterdir() if p != folder}
    loaded_from_stale = [
        module
        for module, value in sys.modules.items()
        if module.endswith(("_pb2", "_pb2_grpc"))
        and str(Path(getattr(value, "__file__", "") or "").parent) in stale
    ]
    if loaded_from_stale:
        raise RuntimeError(
            "The .proto files changed after their stubs were imported in this process; protobuf "
            "cannot load a second version. Restart the Python process (or the notebook kernel)."
        )
    sys.path.insert(0, entry)
