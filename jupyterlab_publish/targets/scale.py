"""How many copies of a published function run, and what each may use: one type for every caller.

The dialog (through the comm protocol), ``publish(..., scale=...)`` and ``jupyter publish --replicas``
all build a ``Scale`` with ``Scale.from_dict``, which checks every field and names the one that is
wrong. A target that can honour scale declares the ``"scale"`` capability; ``Target.push`` refuses
a non-default ``Scale`` on the others, so a setting is never silently dropped.

Either a fixed ``replicas`` count, or autoscaling between ``min_replicas`` and ``max_replicas``
aiming at ``target_ongoing_requests`` per replica (Ray Serve's terms); ``cpus`` per replica.
Standard library only: it runs in the kernel.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

from ..errors import PublishError

# Generous ceilings that catch a typo (1000 for 10) before it asks a cluster for the impossible.
MAX_REPLICAS = 1000
MAX_CPUS = 512.0

_FIELDS = ("replicas", "min_replicas", "max_replicas", "target_ongoing_requests", "cpus")


def _invalid(field: str, message: str, hint: str) -> PublishError:
    return PublishError("invalid_scale", message, hint, {"field": field})


def _count(field: str, value: Any, minimum: int) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise _invalid(field, f"{field} must be a whole number, not {value!r}", f"give {field} as e.g. 2")
    value = int(value)
    if not minimum <= value <= MAX_REPLICAS:
        raise _invalid(field, f"{field} must be between {minimum} and {MAX_REPLICAS}, not {value}",
                       f"choose a {field} in that range")
    return value


def _positive(field: str, value: Any, maximum: float) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _invalid(field, f"{field} must be a number, not {value!r}", f"give {field} as e.g. 1 or 0.5")
    if not 0 < value <= maximum:
        raise _invalid(field, f"{field} must be above 0 and at most {maximum:g}, not {value:g}",
                       f"choose a {field} in that range")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Scale:
    """Replica count (fixed, or autoscaling bounds) and CPUs per replica; ``Scale()`` is the default."""

    replicas: Optional[int] = None
    min_replicas: Optional[int] = None
    max_replicas: Optional[int] = None
    target_ongoing_requests: Optional[float] = None
    cpus: Optional[float] = None

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None

    @property
    def is_default(self) -> bool:
        return all(getattr(self, name) is None for name in _FIELDS)

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "Scale":
        """Check and build; ``None`` or ``{}`` is the default. Unknown keys and contradictions are
        ``invalid_scale`` errors whose ``details.field`` names the field to fix."""
        if data is None:
            return cls()
        if isinstance(data, Scale):
            return data
        if not isinstance(data, Mapping):
            raise _invalid("scale", f"scale must be an object, not {type(data).__name__}",
                           "give e.g. {'replicas': 2} or {'min_replicas': 1, 'max_replicas': 4}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise _invalid(unknown[0], f"unknown scale setting {unknown[0]!r}",
                           f"the settings are: {', '.join(_FIELDS)}")
        scale = cls(
            replicas=_count("replicas", data.get("replicas"), 1),
            min_replicas=_count("min_replicas", data.get("min_replicas"), 0),
            max_replicas=_count("max_replicas", data.get("max_replicas"), 1),
            target_ongoing_requests=_positive("target_ongoing_requests", data.get("target_ongoing_requests"), 10000.0),
            cpus=_positive("cpus", data.get("cpus"), MAX_CPUS),
        )
        scale._check_consistent()
        return scale

    def _check_consistent(self) -> None:
        autoscale_fields = [name for name in ("min_replicas", "target_ongoing_requests")
                            if getattr(self, name) is not None]
        if self.replicas is not None and (self.autoscaling or autoscale_fields):
            raise _invalid("replicas", "give either a fixed replicas count or autoscaling bounds, not both",
                           "clear replicas to autoscale, or clear min/max replicas for a fixed count")
        if autoscale_fields and not self.autoscaling:
            raise _invalid("max_replicas", f"{autoscale_fields[0]} needs max_replicas (autoscaling)",
                           "set max_replicas, the most replicas autoscaling may start")
        if self.autoscaling and (self.min_replicas or 0) > self.max_replicas:
            raise _invalid("min_replicas", f"min_replicas ({self.min_replicas}) is above max_replicas "
                           f"({self.max_replicas})", "lower min_replicas or raise max_replicas")

    def to_dict(self) -> dict:
        """Only the fields that are set, so ``from_dict(to_dict())`` gives the same Scale."""
        return {name: getattr(self, name) for name in _FIELDS if getattr(self, name) is not None}

    def describe(self) -> str:
        """One line for the CLI and the panel: ``2 replicas, 1 CPU each`` or ``1–4 replicas (autoscaling)``."""
        if self.autoscaling:
            text = f"{self.min_replicas or 0}–{self.max_replicas} replicas (autoscaling"
            if self.target_ongoing_requests is not None:
                text += f", {self.target_ongoing_requests:g} ongoing requests each"
            text += ")"
        else:
            count = self.replicas or 1
            text = f"{count} replica" + ("s" if count != 1 else "")
        if self.cpus is not None:
            text += f", {self.cpus:g} CPU" + ("s" if self.cpus != 1 else "") + " each"
        return text


__all__ = ["MAX_CPUS", "MAX_REPLICAS", "Scale"]
