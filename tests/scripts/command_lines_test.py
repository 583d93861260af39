#!/usr/bin/env python3
"""Every command line the docs and the programs' own messages show parses.

Finds each command line of a program in LESTASH_PROGRAMS that a reader may
copy: shell blocks (```sh) and `code spans` of README.md, docs/*.md,
docker/README.md; the comments of config/*.example and config/*.in; the
man pages' own text (docs/man/*.h2m: examples and bold commands); and the
string literals of the programs' sources (src/, but not the benchmark), that
is their error messages and hints. Each is run as written, placeholders
(WORDS, N, ID, PATH, '<conninfo>'...) replaced by sample values, with
LESTASH_PARSE_ONLY=1: the program exits 0 right after a good parse, 2 on a
usage error. Any other status fails the test, with where the line is.

The notation of the docs is read as a person reads it: `… search WORDS`
continues the program named before it, `pause | resume` and `winner|loser`
are alternatives, `[--all]` is optional (both forms are checked).

Usage: command_lines_test.py SOURCE_DIR PROGRAM...
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(sys.argv[1]).resolve()
PROGRAMS = {Path(p).name: str(Path(p).resolve()) for p in sys.argv[2:]}
sys.path.insert(0, str(SOURCE / "scripts"))
import cli_docs  # noqa: E402

# What a placeholder stands for, when a command line needs a real value.
SAMPLES = {
    "N": "3",
    "ID": "12",
    "WORDS": "okapi",
    "TYPE": "note",
    "PATH": "/tmp/lestash-sample/lestash.db",
    "FILE": "/tmp/lestash-sample/sync.toml",
    "DIR": "/tmp/lestash-sample",
    "S": "/tmp/lestash-sample/syncd.sock",
    "CONNINFO": "host=127.0.0.1 dbname=lestash",
    "OWNER-CONNINFO": "host=127.0.0.1 dbname=lestash user=postgres",
}
SHELL_FENCES = {"sh", "bash", "shell", "console"}
# Where a command ends inside a sentence.
PROSE_END = re.compile(r"`| — |; |, | \(|\)|\. |\.$|: ")


@dataclass(frozen=True)
class Found:
    where: str  # file:line
    text: str  # the command line as written
    kind: str  # "shell" (a block line) or "span" (inline) or "prose"


# --- what each program accepts: its subcommands (for the notation) -------------

TREES = {name: cli_docs.help_tree(path, env=dict(os.environ)) for name, path in PROGRAMS.items()}
SUBCOMMANDS = {
    name: {c.path[-1] for c in tree.walk() if c is not tree} for name, tree in TREES.items()
}
PROGRAM_WORD = re.compile(r"(?<![\w/.~-])(" + "|".join(map(re.escape, PROGRAMS)) + r")(?![\w./-])")


def program_of(word: str) -> str | None:
    base = word.rsplit("/", 1)[-1]
    return base if base in PROGRAMS else None


# --- finding command lines -------------------------------------------------------


def spans(text: str, start_line: int, where: str, pattern=r"`([^`]+)`") -> list[Found]:
    """Inline code (or roff bold) that starts with one of the programs."""
    out = []
    last_program = None
    for m in re.finditer(pattern, text, re.S):
        body = " ".join(m.group(1).split())
        line = start_line + text[: m.start()].count("\n")
        first = body.split(" ", 1)[0]
        if first in ("…", "...") and last_program and " " in body:
            body = last_program + body[len(first) :]
        elif program_of(first):
            last_program = program_of(first)
        else:
            continue
        if " " in body:  # a bare program name is a mention, not a command line
            out.append(Found(f"{where}:{line}", body, "span"))
    return out


def prose(text: str, start_line: int, where: str) -> list[Found]:
    """A program named outside code, followed by a subcommand or an option."""
    out = []
    for m in PROGRAM_WORD.finditer(text):
        rest = text[m.end() :]
        nxt = rest.split(None, 1)[0] if rest.strip() else ""
        if not rest.startswith(" ") or not (
            nxt.startswith("-") or nxt.rstrip(".,;:") in SUBCOMMANDS[m.group(1)]
        ):
            continue
        end = PROSE_END.search(rest)
        body = (m.group(1) + (rest[: end.start()] if end else rest)).strip()
        out.append(Found(f"{where}:{start_line + text[: m.start()].count(chr(10))}", body, "prose"))
    return out


def blank_spans(text: str) -> str:
    """The text with its code spans blanked out (kept the same length)."""
    return re.sub(r"`[^`]*`", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def shell_lines(lines: list[tuple[int, str]], where: str) -> list[Found]:
    out, pending, first = [], "", 0
    for number, line in lines:
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = re.sub(r"^\s*\$ ", "", pending + line).strip()
        pending = ""
        if text and PROGRAM_WORD.search(text):
            out.append(Found(f"{where}:{first}", text, "shell"))
    return out


def from_markdown(path: Path) -> list[Found]:
    where = str(path.relative_to(SOURCE))
    out: list[Found] = []
    fence, block, paragraph, para_start = None, [], [], 1
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if m := re.match(r"\s*```(\w*)", line):
            if fence is None:
                out += spans("\n".join(paragraph), para_start, where)
                paragraph, fence, block = [], m.group(1), []
            else:
                if fence in SHELL_FENCES:
                    out += shell_lines(block, where)
                fence = None
            continue
        if fence is not None:
            block.append((number, line))
        elif line.strip():
            if not paragraph:
                para_start = number
            paragraph.append(line)
        else:
            out += spans("\n".join(paragraph), para_start, where)
            paragraph = []
    return out + spans("\n".join(paragraph), para_start, where)


def from_comments(path: Path) -> list[Found]:
    """Comment lines of a config file: spans and commands in the sentences."""
    where = str(path.relative_to(SOURCE))
    out: list[Found] = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("#"):
            text = line.lstrip()[1:]
            if text.startswith("   "):  # an indented command, as in a shell block
                out += shell_lines([(number, text)], where)
            else:
                out += spans(text, number, where) + prose(blank_spans(text), number, where)
    return out


def unroff(text: str) -> str:
    text = re.sub(r"\\f[BIRP]", lambda m: "\x01" if m.group(0) == "\\fB" else "\x02", text)
    return text.replace("\\-", "-").replace("\\(em", "—").replace("\\e", "\\").replace("\\&", "")


def from_man_include(path: Path) -> list[Found]:
    """docs/man/*.h2m: example lines (.nf blocks) and bold commands."""
    where = str(path.relative_to(SOURCE))
    out: list[Found] = []
    example: list[tuple[int, str]] = []
    in_example = False
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = unroff(raw)
        if raw.startswith(".nf"):
            in_example, example = True, []
        elif raw.startswith(".fi"):
            in_example = False
            out += shell_lines(example, where)
        elif in_example:
            example.append((number, line))
        elif not raw.startswith("."):
            out += spans(line, number, where, pattern="\x01([^\x02]+)\x02")
    return out


def cpp_strings(text: str) -> list[tuple[int, str]]:
    """String literals outside comments, adjacent ones joined, with their line."""
    out: list[tuple[int, str]] = []
    i, n, line, joinable = 0, len(text), 1, False
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            joinable = False
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            line += text[i:j].count("\n")
            i, joinable = j + 2, False
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            body = bytes(text[i + 1 : j], "utf-8").decode("unicode_escape", errors="ignore")
            if c == '"':
                try:
                    body = body.encode("latin-1").decode("utf-8")
                except UnicodeError:
                    pass
                if joinable and out:
                    out[-1] = (out[-1][0], out[-1][1] + body)
                else:
                    out.append((line, body))
                joinable = True
            i = j + 1
        else:
            if c == "\n":
                line += 1
            elif not c.isspace():
                joinable = False
            i += 1
    return out


def python_strings(text: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "X" for v in node.values]
            out.append((node.lineno, "".join(map(str, parts))))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def from_source(path: Path) -> list[Found]:
    where = str(path.relative_to(SOURCE))
    text = path.read_text()
    strings = python_strings(text) if path.suffix == ".py" else cpp_strings(text)
    out: list[Found] = []
    for line, s in strings:
        out += spans(s, line, where) + prose(blank_spans(s), line, where)
    return out


def find_all() -> list[Found]:
    found: list[Found] = []
    for p in [SOURCE / "README.md", *sorted((SOURCE / "docs").glob("*.md")),
              SOURCE / "docker/README.md"]:
        found += from_markdown(p)
    for p in sorted((SOURCE / "config").glob("*.example")) + sorted((SOURCE / "config").glob("*.in")):
        found += from_comments(p)
    for p in sorted((SOURCE / "docs/man").glob("*.h2m")):
        found += from_man_include(p)
    for p in sorted((SOURCE / "src").rglob("*")):
        if p.suffix in (".cpp", ".hpp", ".py") and "bench" not in p.relative_to(SOURCE).parts:
            found += from_source(p)
    for p in sorted((SOURCE / "include").rglob("*.hpp")):
        found += from_source(p)
    return found


# --- reading the notation ----------------------------------------------------------


def alternatives(text: str) -> list[str]:
    """`winner|loser` (no spaces) and `[--all]` expanded into every form."""
    m = re.search(r"(?<![\s|])\|(?![\s|])", text)
    if m:
        left = re.search(r"[^\s'\"]*$", text[: m.start()]).group(0)
        right = re.match(r"[^\s'\"]*", text[m.end() :]).group(0)
        head, tail = text[: m.start() - len(left)], text[m.end() + len(right) :]
        return [v for a in (left, right) for v in alternatives(head + a + tail)]
    m = re.search(r"\[([^\]\[]*)\]", text)
    if m and not re.search(r"['\"]", text[: m.start()]):
        return [v for a in ("", m.group(1)) for v in alternatives(text[: m.start()] + a + text[m.end() :])]
    return [text]


def sample(word: str) -> str:
    if word in SAMPLES:
        return SAMPLES[word]
    return re.sub(r"<[^>]+>", "sample", word)


def commands(text: str) -> list[list[str]]:
    """The argv of each run of one of the programs in a shell line."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as e:
        return [["<unreadable>", str(e)]]
    out: list[list[str]] = []
    simple: list[list[str]] = [[]]
    for t in tokens:
        if t in (";", "&&", "||", "|", "&", "(", ")", ">", ">>", "<"):
            simple.append([t])
        else:
            simple[-1].append(t)
    current = None
    for words in simple:
        sep = words[0] if words and words[0] in (";", "&&", "||", "|", "&", "(", ")", ">", ">>", "<") else None
        words = words[1:] if sep else words
        # `lestash-sync pause | resume`: the same program, another subcommand.
        if sep == "|" and current and words and words[0] in SUBCOMMANDS[program_of(current[0])]:
            out.append([current[0], *map(sample, words)])
            continue
        if sep in (">", ">>", "<"):
            continue
        while words and (re.fullmatch(r"\w+=.*", words[0]) or words[0] in ("sudo", "exec", "time", "env", "command")):
            words = words[1:]
        current = None
        if words and program_of(words[0]):
            current = [program_of(words[0]), *map(sample, words[1:])]
            out.append(current)
    return out


def check(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROGRAMS[argv[0]], *argv[1:]],
        env={**os.environ, "LESTASH_PARSE_ONLY": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def main() -> int:
    failures: list[str] = []
    # The mode itself: a good line exits 0 without doing anything, a bad one 2.
    for name in PROGRAMS:
        if check([name, "--version"]).returncode != 0:
            failures.append(f"{name} --version does not exit 0")
        if check([name, "--no-such-option"]).returncode != 2:
            failures.append(f"{name} --no-such-option is not refused (exit 2) in parse-only mode")
        sub = sorted(SUBCOMMANDS[name])[0]
        if check([name, sub, "--no-such-option"]).returncode != 2:
            failures.append(f"{name} {sub} --no-such-option is not refused in parse-only mode")

    found = find_all()
    per_file: dict[str, int] = {}
    for f in found:  # places, a line shown in two files counting in both
        per_file[f.where.split(":")[0]] = per_file.get(f.where.split(":")[0], 0) + 1
    checked: dict[tuple[str, ...], Found] = {}
    for f in found:
        for variant in alternatives(f.text):
            for argv in commands(variant):
                key = tuple(argv)
                if key in checked:
                    continue
                checked[key] = f
                if argv[0] == "<unreadable>":
                    failures.append(f"{f.where}: cannot read `{f.text}` as a command line: {argv[1]}")
                    continue
                r = check(argv)
                shown = shlex.join(argv)
                print(f"{'ok  ' if r.returncode == 0 else 'FAIL'} {f.where}: {shown}")
                if r.returncode != 0:
                    failures.append(
                        f"{f.where}: `{f.text}` does not parse (as: {shown}; exit "
                        f"{r.returncode}): {(r.stderr or r.stdout).strip()}"
                    )

    # The finder itself: each kind of place must have given some lines, or
    # it stopped seeing them.
    def count(prefix: str) -> int:
        return sum(n for f, n in per_file.items() if f.startswith(prefix))

    for prefix, least in [("README.md", 15), ("docs/", 3), ("docker/README.md", 2),
                          ("docs/man/", 4), ("src/", 4)]:
        if count(prefix) < least:
            failures.append(f"only {count(prefix)} command lines found in {prefix} (expected "
                            f"{least} or more): has the finder stopped seeing them?")
    print(f"checked {len(checked)} distinct command lines from {len(per_file)} files "
          f"({len(found)} places):")
    for f, n in sorted(per_file.items()):
        print(f"  {n:4d}  {f}")
    for message in failures:
        print("FAIL:", message, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
