"""The typed result of a backup-head analysis and its JSON form (``results.json``).

`BackupResult` is what `lm_interp.backup.analysis.backup_analysis` returns; `to_json` /
`from_json` convert it to and from the dict written to disk (the same shape as the results
recorded before the dataclasses, so ``results/lm_backup_*/results.json`` still read).
Heads are labelled ``"L.H"`` throughout; ``[layer][head]`` arrays are nested lists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class CleanRun:
    """The unablated run: mean logit difference (IO - S), its spread and accuracy, the DLA sum check."""

    logit_diff: float
    logit_diff_std: float
    accuracy: float
    dla_sum_max_abs_error: float
    abc_logit_diff: float


@dataclass
class HeadDLA:
    """A head and its mean clean direct logit attribution."""

    head: str
    dla: float


@dataclass
class PatchedHead:
    """Patching confirmation of one head: the logit-difference drop when its output comes from ABC prompts."""

    head: str
    dla: float
    ld_drop: float
    mover: bool
    confirmed: bool


@dataclass
class RisingHead:
    """A head whose DLA rises when others are ablated (own-run and frozen clean norm scale)."""

    head: str
    delta_dla: float
    delta_dla_frozen_scale: float
    clean_dla: float


@dataclass
class NegativeHeadChange:
    """A negative head (clean DLA < 0) and how its DLA changes under an ablation."""

    head: str
    clean_dla: float
    delta_dla: float
    delta_dla_frozen_scale: float


@dataclass
class AblationLevel:
    """One level of the sweep: the heads ablated, the logit difference after, every head's ΔDLA.

    :param delta_dla: ``[n_layers][n_heads]`` ΔDLA with the ablated run's norm scale.
    :param delta_dla_frozen_scale: the same with the clean run's norm scale.
    :param backups: heads added to the ablated set at the next level.
    """

    level: int
    ablated: list[str]
    logit_diff: float
    accuracy: float
    logit_diff_without_compensation: float
    compensation: float
    top_backups: list[RisingHead]
    negative_heads: list[NegativeHeadChange]
    sum_positive_delta_dla: float
    component_delta_dla: dict[str, float]
    delta_dla: list[list[float]]
    delta_dla_frozen_scale: list[list[float]]
    backups: list[str]


@dataclass
class BackupVerdict:
    """Under which distributions a head is a backup (``all`` / ``some``), with its level-0 ΔDLA per distribution."""

    verdict: str
    under: list[str]
    delta_dla: dict[str, float]


@dataclass
class NegativeVerdict:
    """The same for a negative head (``all`` / ``some`` / ``none``), with its clean DLA."""

    verdict: str
    under: list[str]
    clean_dla: float
    delta_dla: dict[str, float]


@dataclass
class Robustness:
    """Agreement of the distributions at level 0: rank correlations of backup scores and per-head verdicts."""

    rank_correlation: dict[str, float]
    verdicts: dict[str, BackupVerdict]
    n_heads_backup_under_none: int
    negative_verdicts: dict[str, NegativeVerdict] = field(default_factory=dict)


@dataclass
class BackupSettings:
    """The analysis options (see `backup_analysis`)."""

    n_movers: int
    depth: int
    backups_per_level: int
    n_patch: int
    backup_fraction: float
    negative_fraction: float
    seed: int
    distributions: list[str]
    backup_pool: str


@dataclass
class BackupResult:
    """The whole backup-head experiment on one model.

    :param clean_dla: ``[n_layers][n_heads]`` mean clean DLA of every head.
    :param movers_dla: clean DLA of the ablated name movers; :param negative_heads: of the negative heads.
    :param patching: None when no head was patched (``n_patch=0``).
    :param sweeps: per ablation distribution, the levels (movers, then movers + backups, ...).
    :param intervals: bootstrap intervals over prompts and verdicts with them (`lm_interp.backup.intervals`;
        None when not computed).
    :param cached_seconds: compute time of the distributions read from a cache (timed when computed); the
        result's cost is ``seconds`` (this run's wall time) plus this.
    :param model: ... :param command: run metadata, set by the caller (None when not run from a script).
    """

    n_prompts: int
    templates: list[str]
    n_layers: int
    n_heads: int
    norm: str
    clean: CleanRun
    clean_dla: list[list[float]]
    top_heads: list[HeadDLA]
    movers: list[str]
    movers_dla: dict[str, float]
    negative_heads: dict[str, float]
    backup_threshold: float
    settings: BackupSettings
    patching: list[PatchedHead] | None
    sweeps: dict[str, list[AblationLevel]]
    robustness: Robustness
    intervals: dict | None = None
    cached_seconds: float | None = None
    model: str | None = None
    description: str | None = None
    seconds: float | None = None
    command: str | None = None

    _META = ("model", "description")
    _TAIL = ("seconds", "cached_seconds", "command")

    def to_json(self) -> dict:
        """The ``results.json`` dict: run metadata first and last, ``patching`` only when measured."""
        body = asdict(self)
        head = {k: body.pop(k) for k in self._META}
        tail = {k: body.pop(k) for k in self._TAIL}
        for optional in ("patching", "intervals"):
            if body[optional] is None:
                del body[optional]
        out = {k: v for k, v in head.items() if v is not None}
        out.update(body)
        out.update({k: v for k, v in tail.items() if v is not None})
        return out

    @classmethod
    def from_json(cls, data: dict) -> BackupResult:
        """Rebuild a result from its ``results.json`` dict."""
        rob = data["robustness"]
        return cls(
            n_prompts=data["n_prompts"], templates=list(data["templates"]), n_layers=data["n_layers"],
            n_heads=data["n_heads"], norm=data["norm"], clean=CleanRun(**data["clean"]), clean_dla=data["clean_dla"],
            top_heads=[HeadDLA(**t) for t in data["top_heads"]], movers=list(data["movers"]),
            movers_dla=dict(data["movers_dla"]), negative_heads=dict(data["negative_heads"]),
            backup_threshold=data["backup_threshold"], settings=BackupSettings(**data["settings"]),
            patching=[PatchedHead(**p) for p in data["patching"]] if "patching" in data else None,
            sweeps={d: [AblationLevel(**{**lv, "top_backups": [RisingHead(**b) for b in lv["top_backups"]],
                                         "negative_heads": [NegativeHeadChange(**n) for n in lv["negative_heads"]]})
                        for lv in levels] for d, levels in data["sweeps"].items()},
            robustness=Robustness(
                rank_correlation=dict(rob["rank_correlation"]),
                verdicts={h: BackupVerdict(**v) for h, v in rob["verdicts"].items()},
                n_heads_backup_under_none=rob["n_heads_backup_under_none"],
                negative_verdicts={h: NegativeVerdict(**v) for h, v in rob.get("negative_verdicts", {}).items()}),
            intervals=data.get("intervals"), model=data.get("model"), description=data.get("description"),
            seconds=data.get("seconds"), cached_seconds=data.get("cached_seconds"), command=data.get("command"))
