"""The short POSIX shell launcher SageMaker runs before the user's command (SPEC §5).

It reads the cluster layout SageMaker writes to ``resourceconfig.json`` (``current_host`` and
``hosts``, e.g. ``{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}``), exports
``TRAIN_NUM_NODES``, ``TRAIN_NODE_RANK`` (the position of ``current_host`` in ``hosts``) and
``TRAIN_LEADER_ADDR`` (the first host), links requested mount paths to the channel directories
where it can, and then ``exec``s the user's argv (passed as ``"$@"``) so the user's process
takes the launcher's place and receives SageMaker's SIGTERM itself.

No python or jq is assumed in the image: only ``sh`` parameter expansion and ``tr``.
"""

from __future__ import annotations

import shlex

RESOURCE_CONFIG = "/opt/ml/input/config/resourceconfig.json"
ARGV0 = "train"  # $0 of the launcher shell; the user's argv follows as $1...

# Reading resourceconfig.json: spaces and newlines removed, then the first "current_host" and the
# first (top-level) "hosts" list are cut out with sh pattern removal.
_LAYOUT = (
    'j=$(tr -d " \\t\\r\\n" 2>/dev/null <{config})\n'
    'h=${{j#*\\"current_host\\":\\"}};h=${{h%%\\"*}}\n'
    's=${{j#*\\"hosts\\":\\[}};s=${{s%%]*}};[ "$s" = "$j" ]&&s=\n'
    "n=0;r=0;l=\n"
    'IFS=,;for x in $s;do x=${{x#\\"}};x=${{x%\\"}};[ -z "$l" ]&&l=$x;[ "$x" = "$h" ]&&r=$n;n=$((n+1));done;unset IFS\n'
    "[ $n -gt 0 ]||n=1\n"
    "export TRAIN_NUM_NODES=$n TRAIN_NODE_RANK=$r TRAIN_LEADER_ADDR=${{l:-127.0.0.1}}\n"
)
_LINK = "[ -e {path} ]||{{ mkdir -p {parent} 2>/dev/null;ln -s {target} {path} 2>/dev/null;}}\n"
_EXEC = 'exec "$@"\n'


def launcher_script(links: list[tuple[str, str]] | None = None, *, config_path: str = RESOURCE_CONFIG) -> str:
    """The launcher. ``links`` are ``(channel_dir, mount_path)`` pairs: ``mount_path`` becomes a
    symlink to the channel when nothing is there yet and the container may create it (SageMaker
    itself only offers ``/opt/ml/input/data/<channel>``; ``STORAGE_MOUNT_<n>_PATH`` names that)."""
    script = _LAYOUT.format(config=shlex.quote(config_path))
    for target, path in links or []:
        parent = path.rsplit("/", 1)[0] or "/"
        script += _LINK.format(path=shlex.quote(path), parent=shlex.quote(parent), target=shlex.quote(target))
    return script + _EXEC


def chunk(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
