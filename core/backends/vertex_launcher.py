"""The short POSIX shell launcher a Vertex AI custom job runs before the user's command (SPEC §5).

Vertex AI describes a multi-replica job to each replica in ``CLUSTER_SPEC``, e.g.
``{"cluster": {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"], "workerpool1": [...]},
"environment": "cloud", "task": {"type": "workerpool1", "index": 0}, "job": "<the job spec as a
string>"}`` (Vertex AI docs, "Distributed training": the CLUSTER_SPEC variable). Train puts one
replica in worker pool 0 and the other ``nodes - 1`` in worker pool 1, so the rank is the task
index in pool 0 and ``index + 1`` in pool 1, and the leader is pool 0's host. The ``job`` member is
a JSON string whose quotes are escaped, so matching an unescaped ``"task":{`` never lands in it.

With ``base_output_directory`` set, Vertex exports ``AIP_CHECKPOINT_DIR`` as a ``gs://`` URI;
buckets are mounted by Cloud Storage FUSE at ``/gcs/<bucket>/`` ("Use Cloud Storage FUSE"), so the
launcher turns it into that path. Requested mount paths become symlinks. The user's argv follows
as ``"$@"`` and is ``exec``ed, so the user's process receives Vertex's SIGTERM itself.

No python or jq is assumed in the image: only ``sh`` parameter expansion, ``tr`` and ``printf``.
"""

from __future__ import annotations

import shlex

ARGV0 = "train"  # $0 of the launcher shell; the user's argv follows as $1...
FUSE_ROOT = "/gcs"

_LAYOUT = (
    "r=0;l=127.0.0.1\n"
    'if [ -n "${CLUSTER_SPEC:-}" ];then\n'
    'j=$(printf %s "$CLUSTER_SPEC"|tr -d " \\t\\r\\n")\n'
    't=${j#*\\"task\\":\\{};t=${t%%\\}*}\n'
    'y=${t#*\\"type\\":\\"};y=${y%%\\"*}\n'
    "i=${t#*\\\"index\\\":};i=${i%%,*}\n"
    'case $i in ""|*[!0-9]*) i=0;;esac\n'
    "case $y in workerpool0) r=$i;; workerpool*) r=$((i+1));; esac\n"
    'w=${j#*\\"workerpool0\\":\\[\\"};[ "$w" != "$j" ]&&{ w=${w%%\\"*};l=${w%:*};}\n'
    "fi\n"
    "export TRAIN_NODE_RANK=$r TRAIN_LEADER_ADDR=$l\n"
)
_CHECKPOINT = (
    'if [ -n "${AIP_CHECKPOINT_DIR:-}" ];then c=${AIP_CHECKPOINT_DIR#gs://};c=${c%/}\n'
    "export TRAIN_CHECKPOINT_DIR=" + FUSE_ROOT + '/$c;mkdir -p "$TRAIN_CHECKPOINT_DIR" 2>/dev/null;fi\n'
)
# The newest attempt-<n> directory of an earlier job (its last attempt wrote the latest checkpoints).
_LOAD_LATEST = (
    "b=0;for d in {base}attempt-*;do k=${{d##*-}};case $k in \"\"|*[!0-9]*) continue;;esac;"
    '[ "$k" -gt "$b" ]&&b=$k;done\n'
    '[ "$b" -gt 0 ]&&export TRAIN_LOAD_CHECKPOINT_DIR={base}attempt-$b/checkpoints{suffix}\n'
)
_LINK = "[ -e {path} ]||{{ mkdir -p {parent} 2>/dev/null;ln -s {target} {path} 2>/dev/null;}}\n"
_EXEC = 'exec "$@"\n'


def fuse_path(uri: str) -> str:
    """``gs://bucket/a/b/`` → ``/gcs/bucket/a/b``."""
    return f"{FUSE_ROOT}/" + uri.removeprefix("gs://").rstrip("/")


def launcher_script(
    *,
    links: list[tuple[str, str]] | None = None,
    checkpointing: bool = False,
    load_job_dir: str | None = None,
    load_name: str | None = None,
) -> str:
    """The launcher. ``links`` are ``(fuse_path, mount_path)`` pairs: ``mount_path`` becomes a
    symlink when nothing is there yet. ``load_job_dir`` is an earlier job's output directory under
    ``/gcs`` (``.../<job id>/``): its newest attempt's checkpoints become ``TRAIN_LOAD_CHECKPOINT_DIR``."""
    script = _LAYOUT
    if checkpointing:
        script += _CHECKPOINT
    if load_job_dir is not None:
        base = shlex.quote(load_job_dir.rstrip("/") + "/")
        suffix = shlex.quote("/" + load_name) if load_name else ""
        script += _LOAD_LATEST.format(base=base, suffix=suffix)
    for target, path in links or []:
        parent = path.rsplit("/", 1)[0] or "/"
        script += _LINK.format(path=shlex.quote(path), parent=shlex.quote(parent), target=shlex.quote(target))
    return script + _EXEC


def launcher_command(script: str) -> list[str]:
    """``container_spec.command``; the user's argv goes in ``container_spec.args`` and arrives as ``"$@"``."""
    return ["/bin/sh", "-c", script, ARGV0]
