"""The kgen command line, driven through typer's CliRunner."""

from __future__ import annotations

import fcntl
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from generator import cli, registry

runner = CliRunner()


def kgen(*args: str, input: str | None = None):
    return runner.invoke(cli.app, list(args), input=input)


def test_new_with_defaults_writes_a_committed_project(tmp_path):
    result = kgen("new", str(tmp_path / "my-digits"), "--defaults")
    assert result.exit_code == 0, result.output
    project = tmp_path / "my-digits"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "my-digits"
    assert answers["package_name"] == "my_digits"
    assert answers["arch"] == "simple_cnn" and answers["loop"] == "fit"
    assert answers["data"] == "sample" and answers["task"] == "multiclass"
    assert (project / "my_digits" / "train.py").is_file()
    assert (project / ".git").is_dir()
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")
    ]  # no staging left


def test_options_reach_the_answers(tmp_path):
    result = kgen(
        "new",
        str(tmp_path / "net"),
        "--arch",
        "mobilenet_v2",
        "--loop",
        "custom",
        "--data",
        "synthetic",
        "--image-size",
        "48",
        "--num-classes",
        "4",
    )
    assert result.exit_code == 0, result.output
    answers = yaml.safe_load((tmp_path / "net" / ".copier-answers.yml").read_text())
    assert answers["arch"] == "mobilenet_v2" and answers["loop"] == "custom"
    assert answers["image_size"] == 48 and answers["num_classes"] == 4
    assert answers["channels"] == 3  # MobileNetV2 needs RGB
    assert answers["keras_class"] == "MobileNetV2"


def test_missing_options_are_prompted_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda defaults: not defaults)
    # arch, task, loop, data, image size, channels, classes
    answers = "mlp\n\ncustom\n\n20\n\n\n"
    result = kgen("new", str(tmp_path / "asked"), input=answers)
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((tmp_path / "asked" / ".copier-answers.yml").read_text())
    assert (recorded["arch"], recorded["loop"], recorded["image_size"]) == (
        "mlp",
        "custom",
        20,
    )
    assert recorded["task"] == "multiclass" and recorded["channels"] == 1


def test_an_invalid_answer_is_asked_again_with_the_reason(tmp_path, monkeypatch):
    """A typo does not end the session; questions the answers settle are not asked:
    channels for a model that takes RGB only, classes for binary."""
    monkeypatch.setattr(cli, "_interactive", lambda defaults: not defaults)
    answers = [
        "mobilenet_v9",  # arch: unknown, asked again
        "mobilenet_v2",
        "binary",  # task
        "",  # loop
        "folder",  # data
        "16",  # image size: below mobilenet_v2's 32, asked again
        "40",
    ]
    result = kgen("new", str(tmp_path / "asked"), input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("arch (") == 2 and result.output.count("image size") == 2
    assert "unknown architecture 'mobilenet_v9'" in result.output
    assert "channels" not in result.output and "number of" not in result.output
    recorded = yaml.safe_load((tmp_path / "asked" / ".copier-answers.yml").read_text())
    assert (recorded["arch"], recorded["task"], recorded["data"]) == (
        "mobilenet_v2",
        "binary",
        "folder",
    )
    assert (recorded["image_size"], recorded["channels"]) == (40, 3)


def test_folder_data_is_not_asked_for_its_classes(tmp_path, monkeypatch):
    """The project counts its class folders when it trains."""
    monkeypatch.setattr(cli, "_interactive", lambda defaults: not defaults)
    answers = ["", "", "", "folder", "", ""]  # arch, task, loop, data, size, channels
    result = kgen("new", str(tmp_path / "asked"), input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "channels" in result.output and "number of classes" not in result.output


def test_defaults_flag_never_prompts(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda defaults: not defaults)
    result = kgen("new", str(tmp_path / "quiet"), "--defaults", input="")
    assert result.exit_code == 0, result.output


def test_list_shows_every_choice_with_input_sizes():
    result = kgen("list")
    assert result.exit_code == 0
    for name in [
        *registry.ARCHITECTURES,
        *registry.TASKS,
        *registry.LOOPS,
        *registry.DATA_SOURCES,
    ]:
        assert re.search(rf"^\s+{name}\s", result.output, re.MULTILINE), name
    inception = next(
        line for line in result.output.splitlines() if "inception_v3" in line
    )
    assert " 75 " in inception and "299" in inception
    nasnet = next(line for line in result.output.splitlines() if "nasnet_large" in line)
    assert " 32 " in nasnet and "331" in nasnet and "adamw 0.002" in nasnet


def test_destination_not_empty_is_left_untouched(tmp_path):
    project = tmp_path / "taken"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = kgen("new", str(project), "--defaults")
    assert result.exit_code == 2
    assert "exists and is not empty" in result.output
    assert [p.name for p in project.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_destination_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = kgen("new", str(tmp_path / "afile"), "--defaults")
    assert result.exit_code == 2
    assert "is a file" in result.output
    assert (tmp_path / "afile").read_text() == "x"


def test_empty_destination_directory_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    result = kgen("new", str(tmp_path / "empty"), "--defaults")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / "empty" / "train.py").is_file()


def test_missing_parent_directory(tmp_path):
    result = kgen("new", str(tmp_path / "no" / "such" / "proj"), "--defaults")
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_failure_while_rendering_leaves_nothing(tmp_path, monkeypatch):
    import generator.render

    def broken_git(root):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generator.render, "_git_init", broken_git)
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []


def test_generator_never_imports_tensorflow():
    code = (
        "import sys, generator.cli, generator.render, generator.spec\n"
        "heavy = {'tensorflow', 'keras', 'tensorflow_datasets'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def _tree(project) -> dict[str, tuple[bytes, int]]:
    """Every file outside .git: its bytes and permission bits."""
    return {
        str(path.relative_to(project)): (path.read_bytes(), path.stat().st_mode & 0o777)
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


@pytest.mark.parametrize("own_repo", [False, True])
def test_store_refuses_a_directory_kgen_did_not_create(tmp_path, monkeypatch, own_repo):
    """Whatever is at $KGEN_HOME/template that kgen did not create is left untouched."""
    home = tmp_path / "home"
    mine = home / "template"
    (mine / "mystuff").mkdir(parents=True)
    (mine / "notes.txt").write_text("precious")
    if own_repo:
        subprocess.run(["git", "init", "-q", str(mine)], check=True)
    before = _tree(mine)
    monkeypatch.setenv("KGEN_HOME", str(home))
    result = kgen("new", str(tmp_path / "p"), "--defaults")
    assert result.exit_code == 2
    assert "is not kgen's template store" in result.output
    assert _tree(mine) == before and (mine / "mystuff").is_dir()
    assert not (tmp_path / "p").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["home"]  # no staging left


@pytest.mark.slow  # kills at several points: the fast tier's budget
def test_a_killed_kgen_new_never_blocks_the_next(tmp_path):
    """SIGTERM or SIGKILL at any point: the next kgen new on the same store completes."""
    env = {**os.environ, "KGEN_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "generator", "new"]
    for number, (sig, delay) in enumerate(
        [(signal.SIGTERM, 0.3), (signal.SIGKILL, 0.5), (signal.SIGTERM, 0.8)]
    ):
        victim = subprocess.Popen(
            [*command, str(tmp_path / f"killed{number}"), "--defaults"], env=env
        )
        time.sleep(delay)
        victim.send_signal(sig)
        victim.wait(timeout=60)
        if sig == signal.SIGTERM:  # cleans up: a whole project or nothing
            # -SIGTERM: stopped while Python started, before kgen's handler existed
            assert victim.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
            staged = [p for p in tmp_path.glob(f".killed{number}.*")]
            assert staged == []
            assert (tmp_path / f"killed{number}").exists() == (victim.returncode == 0)
        after = tmp_path / f"after{number}"
        subprocess.run(
            [*command, str(after), "--defaults"], env=env, timeout=120, check=True
        )
        assert (after / ".copier-answers.yml").is_file()


def test_version():
    from generator import __version__

    result = kgen("--version")
    assert result.exit_code == 0 and result.output == f"kgen {__version__}\n"


def test_help_shows_every_default():
    """Plain-text help: Rich markup would eat "[default: ...]" as a tag."""
    result = runner.invoke(cli.app, ["new", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for shown in [
        "Square input side in pixels [default: per arch]",
        "Default global batch size [default: 64]",
        "Default training epochs [default: the family's recipe]",
        "[default: cosine]",
        "[default: float32]",
    ]:
        assert shown in text, shown
    assert " ." not in text  # no default silently dropped before the full stop


def test_two_kgen_new_of_one_path_at_once(tmp_path):
    """One writes the project; the other refuses in one line, exit 2, leaving nothing."""
    env = {**os.environ, "KGEN_HOME": str(tmp_path / "home")}
    command = [
        sys.executable,
        "-m",
        "generator",
        "new",
        str(tmp_path / "p"),
        "--defaults",
    ]
    runs = [
        subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], errors
    refusal = next(e for run, e in zip(runs, errors, strict=True) if run.returncode)
    assert refusal.count("\n") == 1 and refusal.startswith("kgen: error: destination")
    assert "Traceback" not in refusal
    assert (tmp_path / "p" / ".copier-answers.yml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "p"]


def test_new_in_the_current_empty_directory_keeps_it(tmp_path, monkeypatch):
    """`kgen new .` fills the directory itself: a shell inside it stays valid."""
    here = tmp_path / "my-digits"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    result = kgen("new", ".", "--defaults")
    assert result.exit_code == 0, result.output
    assert here.stat().st_ino == inode
    assert (here / "my_digits" / "train.py").is_file() and (here / ".git").is_dir()
    assert sorted(p.name for p in here.iterdir() if p.name.startswith(".")) == [
        ".copier-answers.yml",
        ".git",
        ".github",
        ".gitignore",
        ".pre-commit-config.yaml",
    ]


def test_new_through_a_symlink_to_an_empty_directory(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "proj").symlink_to(tmp_path / "real")
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proj").is_symlink()
    assert (tmp_path / "real" / "proj" / "train.py").is_file()


def test_new_under_a_directory_whose_name_holds_a_newline(tmp_path):
    parent = tmp_path / "odd\nname"
    parent.mkdir()
    result = kgen("new", str(parent / "proj"), "--defaults")
    assert result.exit_code == 0, result.output
    assert (parent / "proj" / "proj" / "train.py").is_file()


def test_a_relative_kgen_home_is_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KGEN_HOME", "rel-home")
    result = kgen("new", "proj", "--defaults")
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((tmp_path / "proj" / ".copier-answers.yml").read_text())
    assert recorded["_src_path"] == str(tmp_path / "rel-home" / "template")


def test_usage_errors_are_one_line_from_the_real_entry_point(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator",
            "new",
            str(tmp_path / "p"),
            "--epochs",
            "x",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("kgen: error: invalid value for '--epochs'")
    assert result.stderr.count("\n") == 1 and "Usage:" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """Mount tmpfs file systems of a given size (root only; skipped elsewhere)."""
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk-{size}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
        )
        if result.returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


@pytest.mark.parametrize("size", ["16k", "128k", "200k", "300k"])
def test_a_full_disk_is_one_line_and_leaves_nothing(small_disk, size):
    """The project does not fit (copier, git init or git add runs out of space)."""
    disk = small_disk(size)
    result = kgen("new", str(disk / "p"), "--defaults")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kgen: error: "), result.output
    assert "no space left on device" in lines[0].lower()
    assert lines[0].endswith("nothing was written")
    assert list(disk.iterdir()) == []


def test_a_full_disk_under_kgen_home_leaves_no_half_made_store(
    small_disk, tmp_path, monkeypatch
):
    disk = small_disk("16k")
    monkeypatch.setenv("KGEN_HOME", str(disk / "home"))
    result = kgen("new", str(tmp_path / "p"), "--defaults")
    assert result.exit_code == 2
    assert re.fullmatch(
        r"kgen: error: git init failed in kgen's template store '.*home/template': "
        r".*No space left on device; if the store is damaged, move it away and kgen "
        r"makes a new one\n",
        result.output,
    )
    assert [p.name for p in (disk / "home").iterdir()] == ["template.lock"]
    assert not (tmp_path / "p").exists()


@pytest.mark.slow  # 30 s of kills: the fast tier keeps test_a_killed_kgen_new_never_blocks_the_next
def test_kgen_new_killed_at_random_points(tmp_path):
    """SIGTERM or SIGKILL at 8 random points, into a new or an existing empty directory:
    after SIGTERM there is a whole project or none (the existing directory empty again)
    and no staging; after either, the next kgen new completes and no staging is left."""
    rng = random.Random(13)
    env = {**os.environ, "KGEN_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "generator", "new"]
    for number in range(8):
        sig = rng.choice([signal.SIGTERM, signal.SIGKILL])
        target = tmp_path / f"victim{number}"
        existing = rng.random() < 0.5
        if existing:
            target.mkdir()
        victim = subprocess.Popen([*command, str(target), "--defaults"], env=env)
        time.sleep(rng.uniform(0.05, 1.6))
        victim.send_signal(sig)
        victim.wait(timeout=60)
        if sig == signal.SIGTERM:
            # -SIGTERM: stopped while Python started, before kgen set its handler
            assert victim.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
            complete = (target / ".copier-answers.yml").is_file()
            if complete:  # finished before the signal: a whole, committed project
                subprocess.run(["git", "rev-parse", "HEAD"], cwd=target, check=True)
            else:
                assert victim.returncode != 0
                assert list(target.iterdir()) == [] if existing else not target.exists()
            assert not list(tmp_path.glob(f".victim{number}.*"))
        assert not _processes_working_in(tmp_path)  # no orphan git or kgen
        with open(tmp_path / "home" / "template.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it
            fcntl.flock(lock, fcntl.LOCK_UN)
        # The next kgen new completes: the same command again if the project was not
        # made (removing a killed process's staging, even inside an existing
        # directory), else a new one.
        complete = (target / ".copier-answers.yml").is_file()
        after = tmp_path / f"after{number}" if complete else target
        subprocess.run(
            [*command, str(after), "--defaults"], env=env, timeout=120, check=True
        )
        assert (after / ".copier-answers.yml").is_file()
        assert not list(tmp_path.glob(f".victim{number}.*"))
        assert not list(target.glob(f".victim{number}.*"))


def test_the_store_keeps_its_versions_packed(tmp_path, monkeypatch):
    """Each new template version is packed: copier clones the store for every render,
    and a clone of loose objects (hundreds of directories) is slow to make and remove.
    """
    from generator import store
    from generator.render import template_dir

    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    template = tmp_path / "template"
    shutil.copytree(template_dir(), template)
    for version in ("1.0", "1.1"):
        (template / "copier.yml").write_text(
            (template / "copier.yml").read_text() + f"# {version}\n"
        )
        source = store.sync(template, store.store_dir(), version=version)
        counts = store.git(source, "count-objects", "-v").stdout
        assert "\ncount: 0\n" in f"\n{counts}" and "packs: 1" in counts, counts
    assert store.tags(source) == ["v1.0", "v1.1"]


@pytest.mark.parametrize(
    "fault",
    ["garbage stamp", "truncated stamp", "empty stamp", "edited work tree", "lost tag"],
)
def test_store_faults_are_repaired_on_the_next_run(tmp_path, monkeypatch, fault):
    """Each file the store keeps and kgen reads back, damaged: the next kgen new
    re-syncs the store and renders the installed template, not the damage."""
    from generator import __version__, store
    from generator.render import template_dir

    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    source = store.sync(template_dir(), store.store_dir())
    tag = f"v{__version__}"
    stamp = source / ".git" / "kgen-sync.json"
    readme = source / "project" / "README.md.jinja"
    if fault == "garbage stamp":
        stamp.write_bytes(b"\xff{not json")
    elif fault == "truncated stamp":
        stamp.write_text(stamp.read_text()[:10])
    elif fault == "empty stamp":
        stamp.write_text("")
    elif fault == "edited work tree":
        readme.write_text("tampered\n")
    else:
        store.git(source, "tag", "--delete", tag)
    result = kgen("new", str(tmp_path / "p"), "--defaults")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "README.md").read_text() != "tampered\n"
    assert store.has_ref(source, tag) and readme.read_text() != "tampered\n"


def _processes_working_in(root: Path, wait: float = 10.0) -> list[str]:
    """Processes whose working directory is under `root`, after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == str(root) or cwd.startswith(f"{root}/"):
                found.append(f"{proc.name}: {cwd}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_weights_file_is_checked_before_anything_is_written(tmp_path):
    """kgen reads a weights file's first bytes (it never imports TensorFlow): an HDF5
    or zip signature, and a .keras zip must hold the weights Keras reads from it; else
    one line and nothing made (G138, G142)."""
    fake = tmp_path / "notes.weights.h5"
    fake.write_text("not weights")
    archive = tmp_path / "notes.keras"  # a zip, but no Keras model's
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("notes.txt", "not weights")
    named = tmp_path / "named.keras"  # the entry's name, not its format
    with zipfile.ZipFile(named, "w") as file:
        file.writestr("model.weights.h5", "not HDF5")
    not_keras = "is not a Keras model archive (a zip holding model.weights.h5, an HDF5"
    for path, message in (
        (fake, "is not an HDF5 file: is it a weights file?"),
        (archive, not_keras),
        (named, not_keras),
    ):
        options = ["--defaults", "--arch", "mobilenet", "--weights", str(path)]
        result = kgen("new", str(tmp_path / "proj"), *options)
        assert result.exit_code == 2
        assert message in result.output
        assert not (tmp_path / "proj").exists()
