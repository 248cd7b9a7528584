"""A study file (experiments/studies/NAME.yaml), read and checked before anything runs.

A study is a set of stages (each one `robust` command with its overrides, possibly using an
earlier stage's outputs as ${stages.NAME.ckpt} or ${stages.NAME.dir}) and tables (each
reporting rows of some stages, with the document's numbers beside ours). Every mistake in
the file is a one-line UserError naming the study and the key.
"""

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robustbench_cli.checks import flag
from robustbench_cli.errors import UserError

# what a stage can run: `robust COMMAND` (an analysis names its word too)
COMMANDS = ("train", "eval", "detect", "transfer", "analyze layers", "analyze gradients")
OUTPUTS = ("ckpt", "dir")  # what a later stage can use: ${stages.NAME.ckpt}, ${stages.NAME.dir}
REFERENCE = re.compile(r"\$\{stages\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\}")
SCALES = ("small", "full")
STUDY_KEYS = {"title", "document", "description", "shared", "common", "stages", "tables", "scales"}
STAGE_KEYS = {"command", "overrides", "note"}  # a stage's note is for the file's reader only
TABLE_KEYS = {"title", "stages", "rows", "cols", "value", "where", "paper", "percent", "note", "digits",
              "effect", "expect", "plot"}
EXPECT_KEYS = {"more", "than", "says"}
SCALE_KEYS = {"common", "stages", "stand_ins", "note"}


@dataclass
class Stage:
    name: str
    command: str
    overrides: list[str]  # raw: ${stages.X.Y} references are filled in just before it runs

    @property
    def needs(self) -> list[str]:
        """The earlier stages whose outputs this one uses, in order of first mention."""
        return list(dict.fromkeys(m.group(1) for o in self.overrides for m in REFERENCE.finditer(o)))


@dataclass
class Expect:
    """The direction of one of the document's effects, checked on our cells: the cell `more`
    (row key, column key) should exceed the cell `than`; either side may instead be a number
    the document names (a slope below 1)."""

    more: tuple[str, str] | float
    than: tuple[str, str] | float
    says: str


@dataclass
class Table:
    id: str
    title: str
    stages: list[str]
    rows: str
    cols: list[str]
    value: str
    where: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)  # row key -> col key -> the document's number
    percent: bool = True  # show values (and read `paper`) as percentages
    digits: int = 1
    note: str = ""
    effect: str = ""  # the document's effect, in words
    expect: list[Expect] = field(default_factory=list)
    plot: bool = False  # a PNG of the table's curves (its columns on the x axis)


@dataclass
class Study:
    name: str
    path: Path
    title: str
    document: str
    description: str
    stages: dict[str, Stage]  # in the file's order, which is also the run order
    tables: dict[str, Table]
    scale: str
    stand_ins: list[str]  # at scale=full: the tool's models standing in for the document's
    scale_note: str

    def stages_for(self, table_ids: list[str] | None) -> list[Stage]:
        """The stages the tables need (all stages when None), with the stages they use, in
        run order."""
        if table_ids is None:
            return list(self.stages.values())
        unknown = [t for t in table_ids if t not in self.tables]
        if unknown:
            raise UserError(f"study {self.name}: unknown table(s) {', '.join(unknown)} "
                            f"(tables: {', '.join(self.tables)})")
        wanted: set[str] = set()
        todo = [s for t in table_ids for s in self.tables[t].stages]
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo.extend(self.stages[name].needs)
        return [stage for name, stage in self.stages.items() if name in wanted]


def study_dir() -> Path:
    """Where the shipped studies live (experiments/studies, inside the package's conf)."""
    return Path(str(resources.files("robustbench_cli.conf") / "experiment" / "studies"))


def available() -> list[str]:
    folder = study_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def study_path(name: str) -> Path:
    """NAME -> experiments/studies/NAME.yaml; a path to a .yaml file is taken as it is."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise UserError(f"study file not found: {path}")
        return path
    path = study_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown study '{name}' (available: {', '.join(available()) or 'none'})")
    return path


def load_study(name: str, scale: str = "small", overrides: list[str] = ()) -> Study:
    """The study NAME at `scale`; `overrides` (from the command line) go to every stage."""
    path = study_path(name)
    label = path.stem
    if scale not in SCALES:
        raise UserError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"cannot read study {path}: {first}") from None
    if not isinstance(raw, dict):
        raise UserError(f"study {label}: the file must be a mapping with stages: and tables:")
    _known_keys(label, "the study", raw, STUDY_KEYS)
    scales = _mapping(label, "scales", raw.get("scales"))
    for key in scales:
        if key not in SCALES:
            raise UserError(f"study {label}: scales.{key}: unknown scale (known: {', '.join(SCALES)})")
    chosen = _mapping(label, f"scales.{scale}", scales.get(scale))
    _known_keys(label, f"scales.{scale}", chosen, SCALE_KEYS)
    common = _common(label, "common", raw.get("common"))
    extra_common = _common(label, f"scales.{scale}.common", chosen.get("common"))
    extra_common["all"] = [*extra_common.get("all", []), *overrides]
    extra_stage = _mapping(label, f"scales.{scale}.stages", chosen.get("stages"))
    stages = _stages(label, _mapping(label, "stages", raw.get("stages")), common, extra_common, extra_stage)
    tables = {tid: _table(label, tid, spec, stages)
              for tid, spec in _mapping(label, "tables", raw.get("tables")).items()}
    stand_ins = _list(label, f"scales.{scale}.stand_ins", chosen.get("stand_ins"))
    return Study(name=label, path=path, title=str(raw.get("title") or label),
                 document=str(raw.get("document") or ""), description=str(raw.get("description") or ""),
                 stages=stages, tables=tables, scale=scale, stand_ins=[str(s) for s in stand_ins],
                 scale_note=str(chosen.get("note") or ""))


def _stages(label, specs: dict, common: dict, extra_common: dict, extra_stage: dict) -> dict[str, Stage]:
    if not specs:
        raise UserError(f"study {label}: stages: is empty")
    unknown = [s for s in extra_stage if s not in specs]
    if unknown:
        raise UserError(f"study {label}: scale overrides name unknown stage(s) {', '.join(unknown)}")
    stages: dict[str, Stage] = {}
    for name, spec in specs.items():
        where = f"stages.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)):
            raise UserError(f"study {label}: stage name {name!r}: letters, digits and _ only")
        spec = _mapping(label, where, spec)
        _known_keys(label, where, spec, STAGE_KEYS)
        command = spec.get("command")
        if command not in COMMANDS:
            raise UserError(f"study {label}: {where}.command must be one of {', '.join(COMMANDS)}, "
                            f"got {command!r}")
        overrides = [*common.get("all", []), *common.get(command, []),
                     *_strings(label, f"{where}.overrides", spec.get("overrides")),
                     *extra_common.get("all", []), *extra_common.get(command, []),
                     *_strings(label, f"scales stages.{name}", extra_stage.get(name))]
        if any(o.strip() in ("-m", "--multirun") for o in overrides):
            raise UserError(f"study {label}: {where} cannot be a multirun: list the values "
                            "(eps=[...], attack=[...]) or make one stage each")
        stage = Stage(str(name), command, overrides)
        for match in REFERENCE.finditer(" ".join(overrides)):
            used, output = match.groups()
            if used not in stages:
                later = "a later stage" if used in specs else "no stage"
                raise UserError(f"study {label}: {where} uses ${{stages.{used}.{output}}}, but "
                                f"{used} is {later} (a stage can use only the stages above it)")
            if output not in OUTPUTS:
                raise UserError(f"study {label}: {where}: ${{stages.{used}.{output}}}: a stage gives "
                                f"{', '.join(OUTPUTS)}")
            if output == "ckpt" and stages[used].command != "train":
                raise UserError(f"study {label}: {where}: ${{stages.{used}.ckpt}}: only train "
                                f"stages give a checkpoint ({used} runs {stages[used].command})")
        stages[stage.name] = stage
    return stages


def _table(label, tid, spec, stages) -> Table:
    where = f"tables.{tid}"
    spec = _mapping(label, where, spec)
    _known_keys(label, where, spec, TABLE_KEYS)
    used = _strings(label, f"{where}.stages", spec.get("stages"))
    if not used:
        raise UserError(f"study {label}: {where}.stages names no stage")
    for name in used:
        if name not in stages:
            raise UserError(f"study {label}: {where}.stages: unknown stage {name!r}")
    for key in ("rows", "cols", "value"):
        if not spec.get(key) or not isinstance(spec[key], str):
            raise UserError(f"study {label}: {where}.{key} must name a row field (e.g. rows: attack, "
                            "cols: eps, value: accuracy)")
    paper = _mapping(label, f"{where}.paper", spec.get("paper"))
    if any(not isinstance(cells, dict) for cells in paper.values()):
        raise UserError(f"study {label}: {where}.paper must map each row to {{column: number}}")
    digits = spec.get("digits", 1)
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 6:
        raise UserError(f"study {label}: {where}.digits must be an integer 0..6, got {digits!r}")
    cols = [c.strip() for c in spec["cols"].split(",")]
    return Table(id=str(tid), title=str(spec.get("title") or tid), stages=used, rows=spec["rows"],
                 cols=cols, value=spec["value"], effect=str(spec.get("effect") or ""),
                 expect=[_expect(label, f"{where}.expect", entry, len(cols))
                         for entry in _list(label, f"{where}.expect", spec.get("expect"))],
                 plot=flag(f"{where}.plot", spec.get("plot", False)),
                 where=_mapping(label, f"{where}.where", spec.get("where")), paper=paper,
                 percent=flag(f"{where}.percent", spec.get("percent", True)), digits=digits,
                 note=str(spec.get("note") or ""))


def _expect(label, where, entry, n_cols: int) -> Expect:
    """{more: [ROW, COL...], than: [ROW, COL...], says: TEXT}: one column value per `cols` field;
    at most one side may be a number instead."""
    entry = _mapping(label, where, entry)
    _known_keys(label, where, entry, EXPECT_KEYS)
    cells = []
    for side in ("more", "than"):
        cell = entry.get(side)
        if isinstance(cell, (int, float)) and not isinstance(cell, bool):
            cells.append(float(cell))
            continue
        if not isinstance(cell, list) or len(cell) != 1 + n_cols:
            raise UserError(f"study {label}: {where}.{side} must be [ROW, COL] (one value per cols "
                            f"field) or a number, got {cell!r}")
        cells.append((cell[0], cell[1] if n_cols == 1 else ",".join(map(str, cell[1:]))))
    if all(isinstance(cell, float) for cell in cells):
        raise UserError(f"study {label}: {where}: compare a cell, not two numbers")
    if not entry.get("says"):
        raise UserError(f"study {label}: {where}.says: say what the check shows")
    return Expect(cells[0], cells[1], str(entry["says"]))


def _common(label, where, value) -> dict[str, list[str]]:
    """{all|COMMAND: [overrides]}."""
    value = _mapping(label, where, value)
    for key in value:
        if key != "all" and key not in COMMANDS:
            raise UserError(f"study {label}: {where}.{key}: use all or a command ({', '.join(COMMANDS)})")
    return {key: _strings(label, f"{where}.{key}", items) for key, items in value.items()}


def _mapping(label, where, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"study {label}: {where} must be a mapping, got {value!r}")
    return value


def _list(label, where, value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"study {label}: {where} must be a list, got {value!r}")
    return value


def _strings(label, where, value) -> list[str]:
    """A list of command-line overrides; YAML may have typed some (eps=0.1 stays a string). A
    list inside the list (a YAML alias of a shared list, *name) is spliced in."""
    items = [part for item in _list(label, where, value)
             for part in (item if isinstance(item, list) else [item])]
    if any(isinstance(item, (dict, list)) for item in items):
        raise UserError(f"study {label}: {where}: each item is one override like key=value, "
                        "quoted when it holds [ ] or { }")
    return [str(item) for item in items]


def _known_keys(label, where, spec: dict, known: set) -> None:
    unknown = sorted(set(spec) - known)
    if unknown:
        raise UserError(f"study {label}: {where}: unknown key(s) {', '.join(map(str, unknown))} "
                        f"(known: {', '.join(sorted(known))})")
