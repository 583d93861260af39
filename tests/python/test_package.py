"""src/python as a package: pip installs it (offline: no index, no build
isolation, so only this machine's setuptools), the `lestash.sources` entry
point is registered and loads the plugin, and what README.md and
docs/protocol.md show works as written, through the installed copy, against
a real daemon and a real private Postgres.

Run by CTest (python-package); by hand:
    LESTASH_SYNCD=build/release/lestash-syncd python3 -B tests/python/test_package.py
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import sync_fixtures as fx

README = fx.SOURCE_DIR / "README.md"
PROTOCOL = fx.SOURCE_DIR / "docs/protocol.md"

# pip without the network: the build uses the setuptools installed here.
OFFLINE_PIP = {
    "PIP_NO_INDEX": "1",
    "PIP_NO_BUILD_ISOLATION": "0",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# Le Stash's own loader (lestash/plugins/loader.py, lestash/cli/main.py): each
# entry point's class instantiated, its commands mounted under its name.
LE_STASH_LIKE_CLI = textwrap.dedent(
    """
    import sys
    from importlib.metadata import entry_points
    import typer
    from typer.testing import CliRunner

    app = typer.Typer(name="lestash")
    @app.callback()
    def main() -> None:
        pass
    for ep in entry_points(group="lestash.sources"):
        app.add_typer(ep.load()().get_commands(), name=ep.name)
    result = CliRunner().invoke(app, sys.argv[1:], env={"COLUMNS": "200"})
    print(result.stdout, end="")
    sys.exit(result.exit_code)
"""
)


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, re.S)


def command_lines(block: str) -> list[str]:
    """Each line of a shell block without its trailing comment."""
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def copy_package(to: Path) -> Path:
    """src/python copied (pip builds in the folder it is given: not in ours)."""
    target = to / "src/python"
    shutil.copytree(
        fx.SOURCE_DIR / "src/python",
        target,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    return target


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.home = fx.Home()
        cls.addClassCleanup(cls.home.remove)
        cls.upstream = fx.postgres().new_upstream()
        # On the default socket ($XDG_RUNTIME_DIR/lestash/syncd.sock), as a user's would be.
        cls.daemon = fx.Daemon(cls.home, "desk", cls.upstream, socket_path=None)
        cls.addClassCleanup(cls.daemon.stop_cleanly)
        cls.socket = str(cls.home.dir / "run/lestash/syncd.sock")
        fx.eventually(
            lambda: fx.SyncClient(cls.socket).status().state == "idle",
            30,
            "the daemon on the default socket",
        )
        for i in range(1, 13):
            cls.daemon.add_note(f"pkg-{i}", f"Okapi note {i}", f"the okapi and the zebra, {i}")
        fx.SyncClient(cls.socket).sync_now(wait=True)

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lestash-py-pkg-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_checked(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        r = subprocess.run(args, capture_output=True, text=True, **kwargs)
        self.assertEqual(r.returncode, 0, f"{shlex.join(args)}:\n{r.stdout}\n{r.stderr}")
        return r

    def user_env(self, python_bin: Path) -> dict[str, str]:
        env = self.home.env(**OFFLINE_PIP)
        env["PATH"] = f"{python_bin}:{env.get('PATH', '/usr/bin:/bin')}"
        env.pop("PYTHONPATH", None)
        return env

    def test_pip_install_to_a_target_registers_the_lestash_sources_entry_point(self) -> None:
        target = self.dir / "target"
        self.run_checked(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--quiet",
                "--target",
                str(target),
                str(copy_package(self.dir)),
            ],
            env={**os.environ, **OFFLINE_PIP},
        )
        check = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(target)!r})
            from importlib.metadata import entry_points, version
            (ep,) = [e for e in entry_points(group="lestash.sources") if e.name == "sync"]
            assert ep.value == "lestash_sync_client.plugin:SyncPlugin", ep.value
            plugin = ep.load()()
            import lestash_sync_client, typer
            where = lestash_sync_client.__file__
            assert where.startswith({str(target)!r}), where
            assert isinstance(plugin.get_commands(), typer.Typer)
            print(version("lestash-sync-client"))
        """
        )
        r = self.run_checked([sys.executable, "-I", "-B", "-c", check])
        # The package's version is the project's (CMake's project(VERSION)).
        self.assertEqual(r.stdout.strip(), os.environ.get("LESTASH_VERSION", r.stdout.strip()))

    def test_the_readme_install_and_commands_work_as_written(self) -> None:
        readme = section(README.read_text(), "From the lestash CLI")
        install, commands = code_blocks(readme, "sh")[:2]
        self.assertEqual(command_lines(install), ["python3 -m pip install ./src/python"])

        # The user's environment: a venv that sees this machine's typer and rich.
        venv = self.dir / "venv"
        self.run_checked(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)]
        )
        repo = self.dir / "lestash-sync"
        copy_package(repo)
        env = self.user_env(venv / "bin")
        for line in command_lines(install):
            self.run_checked(["bash", "-c", line], cwd=repo, env=env)

        cli = self.dir / "lestash_cli.py"
        cli.write_text(LE_STASH_LIKE_CLI)
        lines = command_lines(commands)
        self.assertGreaterEqual(len(lines), 8)
        try:
            for line in lines:
                words = shlex.split(line)
                self.assertEqual(words[:2], ["lestash", "sync"], line)
                r = subprocess.run(
                    [str(venv / "bin/python"), "-B", str(cli), *words[1:]],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=self.dir,
                )
                self.assertEqual(r.returncode, 0, f"{line}:\n{r.stdout}\n{r.stderr}")
                self.assertTrue(r.stdout.strip(), line)
        finally:
            fx.SyncClient(self.socket).sync_resume()  # the block ends with `pause`

    def test_the_python_examples_in_the_docs_work_as_written(self) -> None:
        venv = self.dir / "venv"
        self.run_checked(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)]
        )
        env = self.user_env(venv / "bin")
        self.run_checked(
            [
                str(venv / "bin/python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                str(copy_package(self.dir)),
            ],
            env=env,
        )
        examples = code_blocks(
            section(README.read_text(), "From the lestash CLI"), "python"
        ) + code_blocks(section(PROTOCOL.read_text(), "From Python"), "python")
        self.assertEqual(len(examples), 2)
        for example in examples:
            r = self.run_checked(
                [str(venv / "bin/python"), "-B", "-c", example], env=env, cwd=self.dir
            )
            self.assertIn("Okapi note", r.stdout)


if __name__ == "__main__":
    fx.requirements_or_skip(postgres=True, typer=True)
    for module in ("pip", "venv", "setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            print(
                f"skipped: {module} is not installed for {sys.executable} "
                "(apt-get install python3-pip python3-venv python3-setuptools)"
            )
            sys.exit(77)
    unittest.main(verbosity=2)
