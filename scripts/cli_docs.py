#!/usr/bin/env python3
"""The programs' man pages and bash completion, made from what they say.

Run by the build (CMakeLists.txt, "What a user gets") for every program in
LESTASH_PROGRAMS, so none of it can drift from the code:

  cli_docs.py man PROGRAM SECTION INCLUDE OUT
      help2man over the built PROGRAM's --help and --version, plus a COMMANDS
      section made from each subcommand's --help, plus INCLUDE (the text no
      --help holds: DESCRIPTION, FILES, EXIT STATUS, SEE ALSO...).
  cli_docs.py completion PROGRAM OUT
      a bash completion function for PROGRAM: its subcommands, every option
      (the global ones after a subcommand too), the values an option takes.
  cli_docs.py config-man EXAMPLE INCLUDE VERSION OUT
      sync.toml(5): every key of config/sync.toml.example with its comment
      and default, section by section, plus INCLUDE.

The tests (tests/scripts/cli_docs_test.py, command_lines_test.py) import
this file to read the programs' --help the same way.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# --help shows defaults that depend on who runs it ($HOME, $XDG_RUNTIME_DIR).
# Run this way, they read as the words a man page should say instead.
GENERIC_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "~",
    "XDG_RUNTIME_DIR": "$XDG_RUNTIME_DIR",
    "LC_ALL": "C.UTF-8",
}


@dataclass
class Option:
    names: list[str]  # "-f", "--follow"
    value: str  # "" for a flag; "TEXT", "INT", "TEXT:{winner,loser} REQUIRED"...
    help: str

    @property
    def takes_value(self) -> bool:
        return bool(self.value)

    @property
    def choices(self) -> list[str]:
        m = re.search(r"\{([^}]*)\}", self.value)
        return m.group(1).split(",") if m else []

    @property
    def value_kind(self) -> str:
        """TEXT, INT, FLOAT... (the first word of the value)."""
        return re.split(r"[\s:]", self.value, maxsplit=1)[0] if self.value else ""


@dataclass
class Command:
    path: list[str]  # ["lestash-sync", "conflicts", "resolve"]
    description: str
    usage: str
    positionals: list[Option] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    subcommands: list[Command] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def walk(self):
        yield self
        for sub in self.subcommands:
            yield from sub.walk()

    def all_options(self, root: Command) -> list[Option]:
        """The options accepted here: its own and (fallthrough) the program's."""
        own = [o for o in self.options]
        if self is not root:
            own += [o for o in root.options if o.names != ["-h", "--help"]]
        return own


def run_help(program: str, args: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(
        [program, *args, "--help"],
        env=env if env is not None else GENERIC_ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        raise SystemExit(f"{program} {' '.join(args)} --help exited {r.returncode}: {r.stderr}")
    return r.stdout


def _entries(lines: list[str]) -> list[tuple[str, str]]:
    """'  --socket TEXT   the socket' lines (and their wrapped help) as (left, help)."""
    out: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip():
            continue
        body = line[2:]
        if body.startswith(" ") and out:  # help wrapped onto a line of its own
            left, text = out[-1]
            out[-1] = (left, (text + " " + body.strip()).strip())
            continue
        left, _, text = body.partition("  ")
        out.append((left.strip(), text.strip()))
    return out


def _option(left: str, text: str) -> Option:
    spec, _, value = left.partition(" ")
    return Option(spec.split(","), value.strip(), text)


def parse_help(text: str, path: list[str]) -> Command:
    """A CLI11 --help: description, Usage, Positionals/Options/Subcommands, footer."""
    lines = text.splitlines()
    usage_at = next(i for i, l in enumerate(lines) if l.startswith("Usage: "))
    command = Command(path, " ".join(lines[:usage_at]).strip(), lines[usage_at][len("Usage: ") :])
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines[usage_at + 1 :]:
        if re.fullmatch(r"[A-Z][a-z]+:", line):
            current = sections.setdefault(line[:-1], [])
        elif line.startswith("  ") and current is not None:
            current.append(line)
        elif line.strip():
            current = None  # the footer
    command.positionals = [_option(l, t) for l, t in _entries(sections.get("Positionals", []))]
    command.options = [_option(l, t) for l, t in _entries(sections.get("Options", []))]
    command.subcommands = [
        Command([*path, l], t, "") for l, t in _entries(sections.get("Subcommands", []))
    ]
    return command


def help_tree(program: str, env: dict[str, str] | None = None) -> Command:
    """The program's --help and every subcommand's, as a tree."""
    name = Path(program).name

    def read(args: list[str]) -> Command:
        command = parse_help(run_help(program, args, env), [name, *args])
        command.subcommands = [read([*args, sub.path[-1]]) for sub in command.subcommands]
        return command

    return read([])


# --- roff --------------------------------------------------------------------


def roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + l if l.startswith((".", "'")) else l) for l in text.split("\n"))


def roff_option(o: Option) -> str:
    names = ", ".join(f"\\fB{roff(n)}\\fR" for n in o.names)
    return f".TP\n{names}{' ' + roff(o.value) if o.value else ''}\n{roff(o.help)}\n"


def commands_section(root: Command) -> str:
    """help2man include text: a COMMANDS section, each subcommand's --help."""
    out = []
    for c in root.walk():
        if c is root:
            continue
        out.append(f'.SS "{roff(c.usage)}"\n{roff(c.description)}\n')
        for o in c.positionals + [o for o in c.options if "--help" not in o.names]:
            out.append(roff_option(o))
    return "[COMMANDS]\n" + "".join(out) if out else ""


def make_man(program: str, section: str, include: str, out: str) -> None:
    root = help_tree(program)
    name = Path(program).name
    summary = re.sub(rf"^{re.escape(name)}:\s*", "", root.description)
    with tempfile.NamedTemporaryFile("w", suffix=".h2m", delete=False) as generated:
        generated.write(commands_section(root))
    try:
        subprocess.run(
            [
                "help2man",
                "--no-info",
                "--no-discard-stderr",
                f"--section={section}",
                f"--name={summary}",
                f"--include={include}",
                f"--include={generated.name}",
                f"--output={out}",
                program,
            ],
            env=GENERIC_ENV,
            check=True,
            timeout=60,
        )
    finally:
        os.unlink(generated.name)


# --- bash completion -----------------------------------------------------------


def _bash_words(words: list[str]) -> str:
    return " ".join(words)


def make_completion(program: str, out: str) -> None:
    root = help_tree(program)
    name = root.path[0]
    function = "_" + re.sub(r"\W", "_", name)
    value_options: list[str] = []  # options that take the next word
    cases: list[str] = []
    subcommand_cases: list[str] = []
    for c in root.walk():
        key = " ".join(c.path[1:])
        options = c.all_options(root)
        words = [n for o in options for n in o.names if n.startswith("--")]
        words += [s.path[-1] for s in c.subcommands]
        cases.append(f'        "{key}") words="{_bash_words(words)}" ;;')
        for s in c.subcommands:
            subcommand_cases.append(f'            "{key}:{s.path[-1]}") path="{" ".join(s.path[1:])}" ;;')
        for o in options:
            if o.takes_value:
                value_options += o.names
    choices: dict[str, list[str]] = {}
    files: set[str] = set()
    for c in root.walk():
        for o in c.options:
            for n in o.names:
                if o.choices:
                    choices[n] = o.choices
                elif o.value_kind == "TEXT":
                    files.add(n)
    value_cases = [f'        {n}) COMPREPLY=($(compgen -W "{" ".join(v)}" -- "$cur")); return ;;'
                   for n, v in sorted(choices.items())]
    if files:
        value_cases.append(
            f"        {'|'.join(sorted(files))}) compopt -o filenames 2>/dev/null; "
            'COMPREPLY=($(compgen -f -- "$cur")); return ;;')
    takes_value = "|".join(sorted(set(value_options))) or "--no-option-takes-a-value"
    script = f"""# bash completion for {name}: made by scripts/cli_docs.py from `{name} --help`
# and each subcommand's --help when {name} was built; do not edit.
{function}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD - 1]}}
    local path="" words="" i w skip=0
    # The subcommands typed so far (options and their values skipped).
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ $skip == 1 ]]; then skip=0; continue; fi
        case "$w" in
        {takes_value}) skip=1; continue ;;
        esac
        case "$path:$w" in
{chr(10).join(subcommand_cases)}
        esac
    done
    case "$prev" in
{chr(10).join(value_cases)}
    {takes_value}) return ;;
    esac
    case "$path" in
{chr(10).join(cases)}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F {function} {name}
"""
    Path(out).write_text(script)


# --- sync.toml(5) --------------------------------------------------------------


# What a commented-out `# key = value` line holds, so that prose with an "="
# in it is not taken for a key.
TOML_VALUE = r'"[^"]*"|-?\d+|true|false|\[.*\]'


@dataclass
class ConfigKey:
    section: str
    name: str
    default: str  # as written in the example; "" when commented out (computed)
    example: str  # the commented-out value shown, when there is no fixed default
    comment: list[str]


def read_example(path: str) -> tuple[list[str], list[ConfigKey]]:
    """The example's opening comment, and its keys with their comments."""
    intro: list[str] = []
    keys: list[ConfigKey] = []
    section = None
    comment: list[str] = []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section, comment = m.group(1), []
        elif m := re.fullmatch(r"#\s*(\w+) = (" + TOML_VALUE + ")", line) if section else None:
            keys.append(ConfigKey(section, m.group(1), "", m.group(2), comment))
            comment = []
        elif line.startswith("#"):
            (comment if section else intro).append(line[1:].strip())
        elif m := re.fullmatch(r"(\w+)\s*=\s*(.+)", line):
            if section is None:
                raise SystemExit(f"{path}: key {m.group(1)} outside any section")
            keys.append(ConfigKey(section, m.group(1), m.group(2), "", comment))
            comment = []
        elif not line:
            if section is None and intro and intro[-1]:
                intro.append("")
            elif comment and section is not None:
                comment = []  # a comment standing alone belongs to no key
    return intro, keys


def read_include(path: str) -> dict[str, str]:
    """A help2man include file: [SECTION] headings, roff text below each."""
    sections: dict[str, str] = {}
    current = None
    for line in Path(path).read_text().splitlines():
        if m := re.fullmatch(r"\[([^\]]+)\]", line):
            current = m.group(1).upper()
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def make_config_man(example: str, include: str, version: str, out: str) -> None:
    intro, keys = read_example(example)
    extra = read_include(include)
    when = datetime.datetime.fromtimestamp(
        int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or Path(example).stat().st_mtime,
        datetime.timezone.utc,
    )
    page = [
        f'.TH SYNC.TOML 5 "{when:%B %Y}" "lestash-sync {version}" "File Formats"',
        ".SH NAME",
        extra.pop("NAME", "sync.toml \\- lestash-syncd configuration\n").rstrip(),
        ".SH DESCRIPTION",
        extra.pop("DESCRIPTION", "").rstrip(),
    ]
    paragraph = [l for l in intro]
    page.append("\n.PP\n".join(roff(" ".join(p.split("\n")).strip())
                               for p in "\n".join(paragraph).split("\n\n") if p.strip()))
    page.append(".SH KEYS")
    current = None
    for k in keys:
        if k.section != current:
            page.append(f'.SS "[{k.section}]"')
            current = k.section
        head = f"\\fB{roff(k.name)}\\fR = \\fI{roff(k.default)}\\fR" if k.default else \
            f"\\fB{roff(k.name)}\\fR (no fixed default)"
        text = roff(" ".join(k.comment))
        if k.example:
            text += f"\nExample: \\fB{roff(k.name)} = {roff(k.example)}\\fR"
        page += [".TP", head, text]
    for name, text in extra.items():
        page += [f".SH {name}", text.rstrip()]
    Path(out).write_text("\n".join(p for p in page if p) + "\n")


def main(argv: list[str]) -> None:
    usage = __doc__.split("\n\n")[1]
    if len(argv) < 2:
        raise SystemExit(usage)
    command, args = argv[1], argv[2:]
    if command == "man" and len(args) == 4:
        make_man(*args)
    elif command == "completion" and len(args) == 2:
        make_completion(*args)
    elif command == "config-man" and len(args) == 4:
        make_config_man(*args)
    else:
        raise SystemExit(usage)


if __name__ == "__main__":
    main(sys.argv)
