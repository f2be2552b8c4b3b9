"""A strict reader for the project's two Dockerfiles, so the image tests run what the Dockerfiles say.

It understands the instructions the Dockerfiles use (FROM … AS, ARG, ENV, RUN, COPY, WORKDIR, USER, EXPOSE,
LABEL, HEALTHCHECK, ENTRYPOINT, CMD), line continuations, comments and parser directives, and refuses anything
else: an instruction this reader would silently skip could change the image without the tests noticing.
Standard library only.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

KNOWN = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "EXPOSE", "LABEL", "HEALTHCHECK", "ENTRYPOINT",
         "CMD"}


class DockerfileError(ValueError):
    """The Dockerfile uses something this reader does not understand, or is malformed."""


@dataclass
class Instruction:
    keyword: str
    text: str  # the arguments, continuations joined with single spaces
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        text = self.text.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DockerfileError(f"line {self.line}: invalid JSON array: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DockerfileError(f"line {self.line}: exec form must be a JSON array of strings")
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def read(cls, path: Path) -> "Dockerfile":
        return cls.parse(path.read_text(), path)

    @classmethod
    def parse(cls, text: str, path: Path = Path("Dockerfile")) -> "Dockerfile":
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for ins in _instructions(text):
            if ins.keyword == "FROM":
                words = ins.text.split()
                if len(words) == 1:
                    base, name = words[0], None
                elif len(words) == 3 and words[1].upper() == "AS":
                    base, name = words[0], words[2]
                else:
                    raise DockerfileError(f"line {ins.line}: FROM must be `FROM image [AS name]`")
                stages.append(Stage(base=_substitute(base, global_args, ins.line), name=name))
            elif not stages:
                if ins.keyword != "ARG":
                    raise DockerfileError(f"line {ins.line}: only ARG may come before the first FROM")
                name, value = _arg(ins)
                global_args[name] = value or ""
            else:
                stages[-1].instructions.append(ins)
        if not stages:
            raise DockerfileError(f"{path}: no FROM")
        return cls(path=path, global_args=global_args, stages=stages)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise DockerfileError(f"{self.path}: no stage named {name!r}")

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    # ----------------------------------------------------------------------------------------------------------
    # What the image tests need, read from the stages

    def arg_default(self, stage: Stage, name: str) -> str | None:
        for ins in stage.all("ARG"):
            n, v = _arg(ins)
            if n == name:
                return v
        return self.global_args.get(name)

    def swift_build_command(self) -> list[str]:
        """The `swift build … --product X` command of the build stage, as an argument vector."""
        for stage in self.stages[:-1]:
            for ins in stage.all("RUN"):
                for command in _shell_commands(ins):
                    if command[:2] == ["swift", "build"] and "--product" in command:
                        return command
        raise DockerfileError(f"{self.path}: no `swift build … --product` in a build stage")

    def runtime_packages(self) -> list[str]:
        """The packages the final stage's `apt-get install` lines name, in order."""
        packages: list[str] = []
        for ins in self.final.all("RUN"):
            for command in _shell_commands(ins):
                if command[:1] == ["apt-get"] and "install" in command:
                    after = command[command.index("install") + 1:]
                    packages += [w for w in after if not w.startswith("-")]
        return packages

    def runtime_run_scripts(self) -> list[str]:
        """The final stage's RUN instructions as shell scripts, to replay in a root filesystem."""
        scripts = []
        for ins in self.final.all("RUN"):
            if ins.exec_form() is not None:
                raise DockerfileError(f"line {ins.line}: exec-form RUN in the runtime stage is not supported")
            if ins.text.startswith("--"):
                raise DockerfileError(f"line {ins.line}: RUN flags in the runtime stage are not supported")
            scripts.append(ins.text)
        return scripts

    def runtime_copies(self) -> list[tuple[str, str, str]]:
        """(from stage, source, destination) of the final stage's `COPY --from=…` instructions."""
        copies = []
        for ins in self.final.all("COPY"):
            words = shlex.split(ins.text)
            flags = [w for w in words if w.startswith("--")]
            rest = [w for w in words if not w.startswith("--")]
            source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source is None or len(rest) != 2 or len(flags) != 1:
                raise DockerfileError(f"line {ins.line}: the runtime stage may only `COPY --from=stage SRC DEST`")
            copies.append((source, rest[0], rest[1]))
        return copies

    def env(self) -> dict[str, str]:
        """ENV of the final stage (`ENV K=V …` form)."""
        env: dict[str, str] = {}
        for ins in self.final.all("ENV"):
            for word in shlex.split(ins.text):
                if "=" not in word:
                    raise DockerfileError(f"line {ins.line}: write ENV as KEY=VALUE")
                k, v = word.split("=", 1)
                env[k] = v
        return env

    def user(self) -> tuple[int, int]:
        ins = self.final.last("USER")
        if ins is None:
            raise DockerfileError(f"{self.path}: the runtime stage has no USER (it would run as root)")
        m = re.fullmatch(r"(\d+)(?::(\d+))?", ins.text.strip())
        if not m:
            raise DockerfileError(f"line {ins.line}: USER must be numeric uid[:gid] (Kubernetes runAsNonRoot checks it)")
        uid = int(m.group(1))
        return uid, int(m.group(2) or uid)

    def exposed_ports(self) -> list[int]:
        ports = []
        for ins in self.final.all("EXPOSE"):
            for word in ins.text.split():
                ports.append(int(word.split("/")[0]))
        return ports

    def labels(self) -> dict[str, str]:
        """LABEL key=value pairs, build arguments left as written (`${VERSION}`)."""
        labels: dict[str, str] = {}
        for ins in self.final.all("LABEL"):
            for word in shlex.split(ins.text):
                k, _, v = word.partition("=")
                labels[k] = v
        return labels

    def entrypoint(self) -> list[str]:
        ins = self.final.last("ENTRYPOINT")
        form = ins.exec_form() if ins else None
        if form is None:
            raise DockerfileError(f"{self.path}: ENTRYPOINT must be in exec form (signals reach the process)")
        return form

    def cmd(self) -> list[str]:
        ins = self.final.last("CMD")
        if ins is None:
            return []
        form = ins.exec_form()
        if form is None:
            raise DockerfileError(f"line {ins.line}: CMD must be in exec form")
        return form

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """(options such as interval/timeout, exec-form command) of the HEALTHCHECK."""
        ins = self.final.last("HEALTHCHECK")
        if ins is None:
            raise DockerfileError(f"{self.path}: no HEALTHCHECK")
        m = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", ins.text.strip())
        if not m:
            raise DockerfileError(f"line {ins.line}: write HEALTHCHECK [--opt=value …] CMD [\"exec\", \"form\"]")
        options = dict(o[2:].split("=", 1) for o in m.group(1).split())
        command = Instruction("CMD", m.group(2), ins.line).exec_form()
        assert command is not None
        return options, command


def _instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    in_directives = True
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending:
            if line.startswith("#"):
                if in_directives and re.match(r"#\s*(syntax|escape|check)\s*=", line):
                    if "escape" in line:
                        raise DockerfileError(f"line {number}: the escape directive is not supported")
                    continue
                in_directives = False
                continue
            if not line:
                in_directives = False
                continue
            start = number
        elif line.startswith("#"):
            continue  # a comment inside a continued instruction
        in_directives = False
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(p for p in pending if p)
        pending = []
        keyword, _, rest = joined.partition(" ")
        keyword = keyword.upper()
        if keyword not in KNOWN:
            raise DockerfileError(f"line {start}: instruction {keyword} is not understood by the image tests")
        if "<<" in rest and keyword == "RUN":
            raise DockerfileError(f"line {start}: heredocs are not supported")
        out.append(Instruction(keyword, rest.strip(), start))
    if pending:
        raise DockerfileError("the last instruction ends with a line continuation")
    return out


def _arg(ins: Instruction) -> tuple[str, str | None]:
    words = shlex.split(ins.text)
    if len(words) != 1:
        raise DockerfileError(f"line {ins.line}: one ARG per instruction")
    name, eq, value = words[0].partition("=")
    return name, value if eq else None


def _substitute(text: str, args: dict[str, str], line: int) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in args:
            raise DockerfileError(f"line {line}: ${name} has no ARG default")
        return args[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, text)


def _shell_commands(ins: Instruction) -> list[list[str]]:
    """The simple commands of a shell-form RUN, split at `&&` and `;` (enough for apt-get and swift build)."""
    text = ins.text
    while text.startswith("--"):  # RUN --mount=… flags
        flag, _, text = text.partition(" ")
        text = text.lstrip()
    words = shlex.split(text, posix=True)
    commands, current = [], []
    for w in words:
        if w in ("&&", ";", "||"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(w)
    if current:
        commands.append(current)
    return commands
