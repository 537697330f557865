"""The bundle on disk: the one owner of its file names, its manifest and its verification.

    bundle/
      manifest.json      format_version, classes, task, policy + thresholds, preprocessing (the
                         input contract), input/output specs, dataset manifest hash, source run,
                         versions, runtimes {name: file}, files {name: sha256}, digest
      model.onnx         FP32, softmax/sigmoid inside, dynamic batch
      tokenizer.json     a text model's tokenizer (the contract names it)
      model.fp16.onnx    with --fp16
      model.int8.onnx    with --to onnx-int8 (QDQ, calibrated on the train split)
      model.engine       with --to tensorrt (+ timing.cache, calibration.cache with --int8)
      trtexec.txt        the trtexec line that builds the engine on the target device
      report.html/json   the validation report measured through each runtime

    bundle = load_bundle("runs/.../bundle")     # verified as a whole before anything is used

A bundle is verified as a whole: `digest` is the sha256 of the canonical manifest (every key but
the digest itself, so the file hashes, thresholds, review band, unsafe list and class order are
all covered), and every listed file must match its sha256. A path in the manifest can never
leave the bundle folder (no `..`, no absolute paths, no symlinks out). A signature
(`runtime.signing`, Ed25519 over the digest) is checked where trusted keys are given. What this
protects against and what it does not: docs/security.md.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shotlab.core.errors import InputError
from shotlab.core.files import atomic_path, write_json_atomic
from shotlab.core.images import sha256_file
from shotlab.core.scratch import scratch_folder
from shotlab.runtime.contract import ModelContract

MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"  # a text model's tokenizer (HF `tokenizers` JSON)
ONNX_FP16_FILE = "model.fp16.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
ENGINE_FILE = "model.engine"
TIMING_CACHE_FILE = "timing.cache"
CALIBRATION_CACHE_FILE = "calibration.cache"
TRTEXEC_FILE = "trtexec.txt"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

# 2: the manifest carries `digest` and `preprocessing.kind`. Version 1 bundles had no digest, so
# an edited manifest could not be told from a genuine one: they are refused, not trusted.
FORMAT_VERSION = 2
# Runtimes `export` builds for image models only (export/formats.py TEXT_REFUSED says why).
IMAGE_ONLY_RUNTIMES = ("onnx-int8", "tensorrt")
READS_VERSIONS = (2,)
# The keys every manifest `shotlab export` writes has, and the JSON type its readers rely on.
REQUIRED_KEYS = {"classes": list, "task": str, "preprocessing": dict, "policy": dict,
                 "source": dict, "runtimes": dict, "files": dict}
JSON_TYPES = {list: "a list", str: "a string", dict: "an object", int: "a number",
              float: "a number", bool: "true/false", type(None): "null"}


@dataclass
class Bundle(ModelContract):
    path: Path  # the folder holding the files (a temporary copy for a .zip)
    manifest: dict
    origin: Path  # what the caller named: the folder or the .zip

    @property
    def contract(self) -> dict:
        return self.manifest

    def name(self, member: str = "") -> str:
        """How messages name the bundle, or one of its files (`naming`)."""
        return naming(self.path, self.origin)(member)

    def localise(self, preprocessing):
        """A text part's tokenizer is a file of the bundle: its path inside the folder."""
        if not preprocessing.tokenizer:
            return preprocessing
        path = inside(self.path, preprocessing.tokenizer, self.name)
        return type(preprocessing).from_dict({**preprocessing.to_dict(), "tokenizer": str(path)})

    @property
    def thresholds(self) -> dict:
        """Per unsafe class: threshold, review_band, ... as in the run's thresholds.json."""
        return dict(self.manifest["policy"].get("thresholds") or {})

    @property
    def clip(self) -> dict | None:
        """The clip contract of a model trained on clips (sampling, aggregation per class,
        clip thresholds: runtime/clip_scores.py); None for an image model."""
        return self.manifest.get("clip")

    @property
    def policy(self) -> dict:
        return dict(self.manifest["policy"])

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.manifest["source"]["checkpoint"])

    @property
    def runtimes(self) -> dict[str, str]:
        """{runtime name: model file}, e.g. {"onnx": "model.onnx", "onnx-fp16": ...}."""
        return dict(self.manifest.get("runtimes") or {})

    def model_file(self, runtime: str) -> Path:
        if runtime not in self.runtimes:
            fix = ("a model that reads text is exported to onnx and onnx-fp16 only: choose one "
                   "of those" if self.input_kind != "image" and runtime in IMAGE_ONLY_RUNTIMES
                   else "re-export with the matching --to/--fp16 option")
            raise InputError(f"{self.origin}: this bundle has no {runtime} model (it has: "
                             f"{', '.join(self.runtimes) or 'none'}); {fix}")
        return inside(self.path, self.runtimes[runtime], self.name)

    def model_sha256(self, runtime: str = "onnx") -> str:
        return self.manifest["files"][self.runtimes[runtime]]

    @property
    def model_hashes(self) -> set[str]:
        """The sha256 of each of its models (every runtime's file)."""
        return {self.model_sha256(r) for r in self.runtimes}

    def foreign(self, decision: dict) -> str | None:
        """Why none of this bundle's models made `decision` (a decision record), or None (one
        did, or the record names no model): explaining it here would explain another model."""
        decided = decision.get("model_sha256")
        if not decided or decided in self.model_hashes:
            return None
        return (f"decided by another model (sha256 {decided[:12]}), not by any of bundle "
                f"{self.origin}'s; explain it with the bundle that decided it")


# --- writing ---------------------------------------------------------------------------------

def as_bundled(preprocessing):
    """The contract as a bundle states it: a text part's tokenizer named by its file name inside
    the bundle (the inverse of `Bundle.localise`)."""
    if not preprocessing.tokenizer:
        return preprocessing
    return type(preprocessing).from_dict({**preprocessing.to_dict(), "tokenizer": TOKENIZER_FILE})


def file_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in `folder` except the manifest itself."""
    return {path.relative_to(folder).as_posix(): sha256_file(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != MANIFEST_FILE}


def digest(manifest: dict) -> str:
    """sha256 of the canonical JSON of `manifest` without its own `digest` key."""
    body = {key: value for key, value in manifest.items() if key != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Add the format version, the hashes of the folder's files and the digest; write it."""
    manifest = {**manifest, "format_version": FORMAT_VERSION, "files": file_hashes(folder)}
    manifest["digest"] = digest(manifest)
    write_json_atomic(folder / MANIFEST_FILE, manifest)
    return manifest


def zip_folder(folder: Path, target: Path) -> Path:
    """`target` (.zip) holding the folder's files at its root; returns `target`."""
    with atomic_path(target) as partial:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
    return target


def replace_folder(source: Path, target: Path) -> Path:
    """Move `source` to `target`, removing what was at `target` first."""
    if target.exists():
        shutil.rmtree(target)
    source.replace(target)
    return target


# --- reading and verifying ---------------------------------------------------------------------

def naming(folder: Path, origin: Path | None = None):
    """`name(member="")`: how messages name the bundle or a file in it. For a folder bundle, the
    path; for a .zip, the zip and the member inside it (`bundle.zip: model.onnx`), never the
    temporary folder it was unpacked into (deleted when shotlab exits)."""
    def name(member: str = "") -> str:
        if origin is None or origin == folder:
            return str(folder / member)
        if origin.is_dir():  # a folder bundle read through its private copy (`private_copy`)
            return str(origin / member)
        return f"{origin}: {member}" if member else str(origin)
    return name


def read_manifest(folder: Path, name=None) -> dict:
    name = name or naming(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        nested = sorted(p.relative_to(folder).as_posix() for p in folder.glob(f"*/{MANIFEST_FILE}"))
        hint = (f" (it holds {nested[0]}: zip the bundle folder's files, not the folder, as "
                f"`shotlab export --zip` does)" if nested else "")
        raise InputError(f"{name()}: not a shotlab bundle (no {MANIFEST_FILE}){hint}; give the "
                         f"folder or .zip that `shotlab export` wrote")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{name(MANIFEST_FILE)}: not valid JSON ({exc}); re-export the "
                         f"bundle") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{name(MANIFEST_FILE)}: not a bundle manifest (a JSON object); "
                         f"re-export the bundle")
    return manifest


def check_format(manifest: dict, name) -> None:
    if "format_version" not in manifest:  # a run folder's data manifest, most often
        raise InputError(f"{name()}: not a bundle (its {MANIFEST_FILE} names no bundle format; "
                         f"a training run's folder?): give the run's exported bundle "
                         f"(RUN/bundle, made by `shotlab export RUN`)")
    found = manifest.get("format_version")
    if found not in READS_VERSIONS:
        raise InputError(f"{name()}: bundle format version {found} is not one this shotlab reads "
                         f"({', '.join(map(str, READS_VERSIONS))}); re-export it from its run "
                         f"with `shotlab export RUN --force` (docs/export.md)")


def inside(folder: Path, member, name=None) -> Path:
    """`folder/member` for a manifest path that stays inside `folder`; InputError otherwise.
    `name` names the bundle in messages (`naming`)."""
    name = name or naming(folder)
    pure = PurePosixPath(member) if isinstance(member, str) else None
    if pure is None or not member or pure.is_absolute() or ".." in pure.parts or "\\" in member:
        raise InputError(f"{name(MANIFEST_FILE)}: file path {member!r} would leave the bundle "
                         f"folder; refusing to use this bundle (re-export it)")
    path = folder / pure
    if not path.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"{name(pure.as_posix())}: a link that points outside the bundle "
                         f"folder; refusing to use this bundle (re-export it)")
    return path


def verify_bundle(folder: Path, manifest: dict, name=None) -> None:
    """Raise InputError unless the manifest's digest and every file's sha256 match.

    Checks, in order: the format version, the digest over the manifest, that every path stays
    in the folder, that every runtime's model is a hashed file, and each file's sha256. `name`
    names the bundle in messages (`naming`)."""
    name = name or naming(folder)
    manifest_name = name(MANIFEST_FILE)
    check_format(manifest, name)
    if manifest.get("digest") != digest(manifest):
        raise InputError(f"{manifest_name}: the manifest does not match its digest (it "
                         f"was edited or corrupted after export); re-export the bundle, do not "
                         f"run it")
    check_fields(manifest, name)
    files = manifest["files"]
    if not files:
        raise InputError(f"{manifest_name}: lists no file hashes; re-export the bundle")
    for runtime, member in manifest["runtimes"].items():
        if member not in files:
            raise InputError(f"{manifest_name}: runtime {runtime} names {member!r}, which "
                             f"is not a hashed bundle file; re-export the bundle")
    for member, expected in files.items():
        path = inside(folder, member, name)
        if not path.is_file():
            raise InputError(f"{name()}: bundle file {member} is missing; re-export the bundle "
                             f"or restore the file")
        if sha256_file(path) != expected:
            raise InputError(f"{name(member)}: sha256 does not match the bundle manifest (the "
                             f"file was modified or corrupted); re-export the bundle, do not "
                             f"run it")


def check_fields(manifest: dict, name) -> None:
    """InputError unless the manifest has every required key with the type its readers use (a
    manifest whose digest holds can still have been written by something else than export)."""
    missing = REQUIRED_KEYS.keys() - set(manifest)
    if missing:
        raise InputError(f"{name(MANIFEST_FILE)}: lacks {sorted(missing)}; it was not written "
                         f"by `shotlab export`")
    problem = field_problem(manifest)
    if problem:
        raise InputError(f"{name(MANIFEST_FILE)}: not a valid bundle manifest: {problem}; "
                         f"re-export the bundle")


def check_shipped(manifest: dict, name) -> None:
    """Refuse a bundle its own export refused (`OUT.rejected/`, kept so the report can be read):
    its gate failures are in the signed manifest, and nothing should run it by mistake."""
    gate = (manifest.get("validation") or {}).get("gate") or {}
    failures = gate.get("failures") if isinstance(gate, dict) else None
    if failures and not gate.get("allowed_regression"):
        raise InputError(f"{name()}: its export refused it ({'; '.join(map(str, failures))}); a "
                         f"rejected bundle is kept for reading its report, not for running: fix "
                         f"the cause and export again, or export with --allow-regression")


def field_problem(manifest: dict) -> str | None:
    """What is wrong with the types of the manifest's fields, or None."""
    def json_type(value) -> str:
        return JSON_TYPES.get(type(value), type(value).__name__)

    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(manifest[key], kind):
            return f"{key} must be {JSON_TYPES[kind]}, not {json_type(manifest[key])}"
    named = {"runtimes": manifest["runtimes"], "files": manifest["files"]}
    for key, entries in named.items():
        for entry, value in entries.items():
            if not isinstance(value, str):
                return f"{key}.{entry} must be a string, not {json_type(value)}"
    if not all(isinstance(c, str) for c in manifest["classes"]):
        return "classes must be a list of class names (strings)"
    for key, kind in {"thresholds": dict, "unsafe": list}.items():
        value = manifest["policy"].get(key)
        if value is not None and not isinstance(value, kind):
            return f"policy.{key} must be {JSON_TYPES[kind]}, not {json_type(value)}"
    return None


def check_contract(bundle: Bundle) -> None:
    """InputError naming the manifest unless its input contract (every part's preprocessing)
    is one this shotlab can run."""
    try:
        bundle.parts
    except InputError as exc:
        raise InputError(f"{bundle.name(MANIFEST_FILE)}: {exc}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise InputError(f"{bundle.name(MANIFEST_FILE)}: not a valid bundle manifest: its "
                         f"preprocessing cannot be read ({type(exc).__name__}: {exc}); "
                         f"re-export the bundle") from None


def unzip(archive_path: Path, target: Path) -> Path:
    """Extract a bundle zip into `target` within the archive limits (size, file count, ratio,
    checked before anything is written), refusing members that would land outside it."""
    from shotlab.core.archive_limits import extract_zip

    try:
        with zipfile.ZipFile(archive_path) as archive:
            extract_zip(archive, archive_path, target)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive_path}: not a readable zip ({exc}); re-export with "
                         f"`shotlab export RUN --zip`") from None
    return target


def private_copy(folder: Path, name) -> Path:
    """A copy of a folder bundle's manifest, its signature and the files the manifest lists, in
    a folder of this process's own (`temporary_folder`, as a zip is unpacked): what is verified
    is then what runs. Verifying the user's folder and opening its files again afterwards left
    a gap in which anyone who can write that folder could swap model.onnx for another (timed
    with inotify, a forged model ran under a valid signature). Files it does not list are not
    copied; a listed path that would leave the folder is refused here (`inside`)."""
    from shotlab.runtime.signing import SIGNATURE_FILE

    read_manifest(folder, name)  # a folder that is no bundle is named as the user gave it
    target = temporary_folder()
    copy_member(folder / MANIFEST_FILE, target, MANIFEST_FILE, name)
    manifest = read_manifest(target, name)  # the copy says what to copy: it is what is verified
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    for member in [SIGNATURE_FILE, *listed]:
        source = inside(folder, member, name)
        if source.is_file():
            copy_member(source, target, member, name)
    return target


def copy_member(source: Path, target: Path, member: str, name) -> None:
    """`source` (a bundle file) copied to `target/member`; an InputError naming the bundle's
    file, the copy's folder and the fix when it cannot be (a full or unwritable folder)."""
    copy = target / PurePosixPath(member)
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    except OSError as exc:
        raise InputError(f"{name(member)}: cannot be copied to {target} to be verified and run "
                         f"({exc.strerror or exc}); free space there, or set TMPDIR to a folder "
                         f"with room") from None


UNPACKED: list[Path] = []  # this process's unpacked zips (`remove_unpacked`)
UNPACKED_PREFIX = "shotlab-bundle-"


def temporary_folder() -> Path:
    """A folder removed when the process exits: where a zipped bundle is unpacked. Its name
    holds the process id, so copies left by processes that died without their exit handlers
    (a killed Ray replica) are removed by the next unpack (`core.scratch`)."""
    folder = scratch_folder(UNPACKED_PREFIX)
    UNPACKED.append(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def remove_unpacked() -> None:
    """Remove the bundles this process unpacked, now: for a process that ends without running
    its exit handlers (a Ray Serve replica is killed after its `__del__`)."""
    while UNPACKED:
        shutil.rmtree(UNPACKED.pop(), ignore_errors=True)


def load_bundle(path, *, verify: bool = True, trusted_keys=None) -> Bundle:
    """The bundle at `path` (folder or .zip), verified as a whole before anything is used.

    `trusted_keys` (public key files; default: $SHOTLAB_TRUSTED_KEYS) makes a valid signature
    by one of them required (`runtime.signing`). A folder is verified and run from a private
    copy (`private_copy`; `Bundle.origin` is the folder given). `verify=False` is for export's
    own provisional bundle, before its report exists. `~` is expanded, as a shell would."""
    from shotlab.runtime import signing

    origin = Path(path).expanduser()
    if origin.is_file() and origin.suffix.lower() == ".zip":
        folder = unzip(origin, temporary_folder())
    elif origin.is_dir():
        folder = private_copy(origin, naming(origin)) if verify else origin
    else:
        raise InputError(f"{origin}: no bundle there (expected the folder or .zip that "
                         f"`shotlab export` wrote)")
    name = naming(folder, origin)
    manifest = read_manifest(folder, name)
    if verify:
        verify_bundle(folder, manifest, name)  # checks the fields once the digest holds
        keys = signing.trusted_keys_from_env() if trusted_keys is None else list(trusted_keys)
        if keys:
            signing.verify_signature(folder, manifest, keys, name)
        check_shipped(manifest, name)
    else:
        check_fields(manifest, name)
    bundle = Bundle(folder, manifest, origin)
    check_contract(bundle)
    return bundle
