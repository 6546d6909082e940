"""Which protocol scores validation subjects: the test protocol itself wherever its sequence types exist.

Validation subjects come out of the training subjects. CASIA-B, OUMVLP and the synthetic sets record
every training subject under the test protocol's types and views, and Gait3D picks probes by a
``PROBE_SET`` that the validation split writes, so those protocols run unchanged. GREW's training
subjects carry no gallery (``01``) or probe (``02``) types; there a probe sequence per validation
subject is scored against the rest, with GREW's rank-1/5/10/20.
"""

from __future__ import annotations

from collections.abc import Iterable

from workbench.evaluation._protocols import (
    CrossViewProtocol,
    Gait3DProtocol,
    GREWProtocol,
    Protocol,
    SyntheticProtocol,
    get_protocol,
)


def validation_protocol(protocol: str | Protocol, types: Iterable[str]) -> Protocol:
    """The protocol to score validation subjects whose sequences have ``types``.

    Raises ``ValueError`` when a cross-view protocol's gallery types are missing from the
    validation subjects, naming the types found.
    """
    proto = get_protocol(protocol)
    present = set(types)
    if isinstance(proto, GREWProtocol):
        if set(proto.gallery_types) <= present and set(proto.probe_types) <= present:
            return proto
        return Gait3DProtocol(name=f"{proto.name}-validation", ranks=proto.ranks,
                              description=f"{proto.name} validation: one probe sequence per subject against "
                                          "the rest of its subjects' sequences")
    if isinstance(proto, CrossViewProtocol) and not set(proto.gallery_types) <= present:
        raise ValueError(
            f"{proto.name}: the validation subjects have no gallery sequences of types "
            f"{', '.join(proto.gallery_types)} (their types: {', '.join(sorted(present)[:12])}); "
            "validation subjects must be recorded like the test subjects"
        )
    if isinstance(proto, SyntheticProtocol):
        proto.layout(sorted(present))  # the same checks the test step will make
    return proto
