"""Accelerator type and count → a Vertex AI machine type and ``AcceleratorType`` (SPEC §4).

Which GPUs each Compute Engine machine family carries, and how many, is from the Vertex AI docs
("Configure compute resources for custom training": GPUs and machine types) and the Compute
Engine GPU machine types page:
- N1 with NVIDIA_TESLA_T4: 1, 2 or 4 GPUs (up to 48 vCPUs with 1 or 2 GPUs, 96 with 4).
- G2 (NVIDIA_L4): the GPU count is fixed by the machine type (g2-standard-4 to -32: 1, -24: 2,
  -48: 4, -96: 8).
- A2, A3 and A4 machine types carry their GPUs: ``-<n>g`` at the end of the name is the count.
  a2-highgpu and a2-megagpu: NVIDIA_TESLA_A100; a2-ultragpu: NVIDIA_A100_80GB; a3-highgpu:
  NVIDIA_H100_80GB; a3-megagpu-8g: NVIDIA_H100_MEGA_80GB; a3-ultragpu-8g: NVIDIA_H200_141GB;
  a4-highgpu-8g: NVIDIA_B200.
- A10G and L40S are AWS (G5, G6e) GPUs that Vertex AI does not offer.
Every accelerator type named here is a member of ``aiplatform_v1.AcceleratorType`` (a test checks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import FieldError
from core.model import Compute

CPU_MACHINE = "n1-standard-4"  # accelerator "none": 4 vCPU, 15 GB
MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
_GPUS_IN_NAME = re.compile(r"-(\d+)g$")

# accelerator → (AcceleratorType, {GPUs per node: default machine type})
MACHINE_TABLE: dict[str, tuple[str, dict[int, str]]] = {
    "T4": ("NVIDIA_TESLA_T4", {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"}),
    "L4": ("NVIDIA_L4", {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}),
    "A100": ("NVIDIA_TESLA_A100", {
        1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g", 16: "a2-megagpu-16g",
    }),
    "A100_80GB": ("NVIDIA_A100_80GB", {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g",
                                       8: "a2-ultragpu-8g"}),
    "H100": ("NVIDIA_H100_80GB", {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g", 8: "a3-highgpu-8g"}),
    "H200": ("NVIDIA_H200_141GB", {8: "a3-ultragpu-8g"}),
    "B200": ("NVIDIA_B200", {8: "a4-highgpu-8g"}),
}
NOT_OFFERED = {"A10G": "an AWS (G5) GPU", "L40S": "an AWS (G6e) GPU"}

# compute.instance_type overrides: machine-type prefix → the accelerator it carries.
FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "T4": (("n1-", "NVIDIA_TESLA_T4"),),
    "L4": (("g2-standard-", "NVIDIA_L4"),),
    "A100": (("a2-highgpu-", "NVIDIA_TESLA_A100"), ("a2-megagpu-", "NVIDIA_TESLA_A100")),
    "A100_80GB": (("a2-ultragpu-", "NVIDIA_A100_80GB"),),
    "H100": (("a3-highgpu-", "NVIDIA_H100_80GB"), ("a3-megagpu-", "NVIDIA_H100_MEGA_80GB")),
    "H200": (("a3-ultragpu-", "NVIDIA_H200_141GB"),),
    "B200": (("a4-highgpu-", "NVIDIA_B200"),),
}
N1_GPU_COUNTS = (1, 2, 4)
G2_GPUS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1,
           "g2-standard-32": 1, "g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8}
_GPU_PREFIXES = ("g2-", "a2-", "a3-", "a4-")


@dataclass(frozen=True)
class Machine:
    machine_type: str
    accelerator_type: str | None = None
    accelerator_count: int = 0

    def to_spec(self) -> dict[str, object]:
        spec: dict[str, object] = {"machine_type": self.machine_type}
        if self.accelerator_type is not None:
            spec |= {"accelerator_type": self.accelerator_type, "accelerator_count": self.accelerator_count}
        return spec


def machine_for(compute: Compute) -> tuple[Machine | None, list[FieldError]]:
    accelerator = compute.accelerator
    if accelerator in NOT_OFFERED:
        message = f"{accelerator} is {NOT_OFFERED[accelerator]} that Vertex AI does not offer; use L4, A100 or H100"
        return None, [FieldError(("compute", "accelerator"), message)]
    if compute.instance_type is not None:
        return _override(compute, compute.instance_type)
    if accelerator == "none":
        return Machine(CPU_MACHINE), []
    accelerator_type, sizes = MACHINE_TABLE[accelerator]
    count = compute.gpus_per_node
    if count not in sizes:
        counts = ", ".join(str(n) for n in sorted(sizes))
        message = f"Vertex AI offers {accelerator} with {counts} per machine, not {count}"
        return None, [FieldError(("compute", "accelerators_per_node"), message)]
    return Machine(sizes[count], accelerator_type, count), []


def _override(compute: Compute, machine_type: str) -> tuple[Machine | None, list[FieldError]]:
    where = ("compute", "instance_type")
    if not MACHINE_TYPE.match(machine_type):
        return None, [FieldError(where, f"'{machine_type}' is not a Compute Engine machine type (e.g. a3-highgpu-8g)")]
    carried = _gpus_in(machine_type)
    if compute.accelerator == "none":
        if carried is not None or machine_type.startswith(_GPU_PREFIXES):
            return None, [FieldError(("compute", "accelerator"), f"{machine_type} comes with GPUs; name them in "
                                                                 "compute.accelerator")]
        return Machine(machine_type), []
    family = next((t for p, t in FAMILIES[compute.accelerator] if machine_type.startswith(p)), None)
    if family is None:
        prefixes = " or ".join(p + "*" for p, _ in FAMILIES[compute.accelerator])
        message = f"{compute.accelerator} runs on {prefixes} machine types on Vertex AI, not {machine_type}"
        return None, [FieldError(where, message)]
    count = compute.gpus_per_node
    allowed = (carried,) if carried is not None else N1_GPU_COUNTS
    if machine_type.startswith("g2-"):
        if machine_type not in G2_GPUS:
            return None, [FieldError(where, f"'{machine_type}' is not a G2 machine type")]
        allowed = (G2_GPUS[machine_type],)
    if count not in allowed:
        counts = " or ".join(str(n) for n in allowed)
        message = f"{machine_type} takes {counts} {compute.accelerator} per machine; set accelerators_per_node to it"
        return None, [FieldError(("compute", "accelerators_per_node"), message)]
    return Machine(machine_type, family, count), []


def _gpus_in(machine_type: str) -> int | None:
    if not machine_type.startswith(("a2-", "a3-", "a4-")):
        return None
    found = _GPUS_IN_NAME.search(machine_type)
    return int(found.group(1)) if found else None
