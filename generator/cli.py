"""kgen's command line. Typer only: options -> ProjectSpec, printing, errors -> exit 2.

Closed choices (--arch, --task, ...) are plain strings validated by the registry rather
than Click choices, so a bad value gets one line with a "did you mean" instead of a usage
panel; `--help` and `kgen list` still show every valid value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from generator import registry
from generator.spec import ProjectSpec, SpecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Generate TensorFlow/Keras projects that train models from scratch.",
)


def _names(table: dict) -> str:
    return ", ".join(table)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"kgen: error: {message}", err=True)
    return typer.Exit(code=2)


def _interactive(defaults: bool) -> bool:
    return not defaults and sys.stdin.isatty()


@app.command()
def new(
    path: Annotated[
        Path, typer.Argument(help="Project directory; its name names the project.")
    ],
    arch: Annotated[
        str | None,
        typer.Option(help=f"Architecture: {_names(registry.ARCHITECTURES)}."),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help=f"Task: {_names(registry.TASKS)}.")
    ] = None,
    loop: Annotated[
        str | None, typer.Option(help=f"Training loop: {_names(registry.LOOPS)}.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help=f"Data source: {_names(registry.DATA_SOURCES)}."),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="Square input side in pixels [default: per arch]."),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(help="Model input channels, 1 or 3 [default: per arch]."),
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(help="Number of classes [default: 10].")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Default training epochs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Default global batch size.")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Default learning rate.")] = 1e-3,
    tfds_name: Annotated[
        str, typer.Option(help="tensorflow-datasets name, with --data tfds.")
    ] = "mnist",
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults", help="Use defaults for missing options, never prompt."
        ),
    ] = False,
) -> None:
    """Generate a new project at PATH."""
    spec = ProjectSpec(
        project_name=path.absolute().name,
        batch_size=batch_size,
        learning_rate=learning_rate,
        tfds_name=tfds_name,
        epochs=epochs,
    )
    ask = _interactive(defaults)
    try:
        for field, value, table in (
            ("arch", arch, registry.ARCHITECTURES),
            ("task", task, registry.TASKS),
            ("loop", loop, registry.LOOPS),
            ("data", data, registry.DATA_SOURCES),
        ):
            if value is None and ask:
                value = typer.prompt(
                    f"{field} ({_names(table)})", default=getattr(spec, field)
                )
            if value is not None:
                spec = _replace(spec, **{field: value})
        spec = _replace(spec)  # validates what is known so far before asking more
        for field, value, default in (
            ("image_size", image_size, spec.default_image_size()),
            ("channels", channels, spec.default_channels()),
            ("num_classes", num_classes, 10),
        ):
            if value is None and ask:
                value = typer.prompt(field.replace("_", " "), default=default, type=int)
            spec = _replace(spec, **{field: value})
        from generator.render import create_project

        create_project(spec.resolve(), path)
    except SpecError as error:
        raise _fail(str(error)) from None
    typer.echo(
        f"Created {spec.project_name} ({spec.arch}, {spec.task}, {spec.loop} loop, "
        f"{spec.data} data) in {path}"
    )
    typer.echo(
        f"Next: cd {path} && python -m pip install -e . && python -m {spec.package_name} train"
    )


def _replace(spec: ProjectSpec, **changes: object) -> ProjectSpec:
    """Apply changes and validate them, keeping the unresolved defaults for later."""
    from dataclasses import replace

    spec = replace(spec, **changes)
    spec.resolve()
    return spec


@app.command("list")
def list_choices() -> None:
    """List the architectures, tasks, loops and data sources kgen can generate."""
    typer.echo("Architectures (input sizes in pixels; * = fixed size):")
    typer.echo(f"  {'name':<22}{'min':>5}{'default':>9}  {'pixels':<18}description")
    for arch in registry.ARCHITECTURES.values():
        fixed = "*" if arch.fixed_size else ""
        pixels = {
            registry.RESCALE: "rescaled to [0,1]",
            registry.BUILTIN: "0-255 (in model)",
            registry.PREPROCESS_INPUT: "preprocess_input",
        }[arch.preprocessing]
        typer.echo(
            f"  {arch.name:<22}{arch.min_size:>5}{str(arch.default_size) + fixed:>9}  "
            f"{pixels:<18}{arch.description}"
        )
    for title, table in (
        ("Tasks", registry.TASKS),
        ("Loops", registry.LOOPS),
        ("Data sources", registry.DATA_SOURCES),
    ):
        typer.echo(f"\n{title}:")
        for choice in table.values():
            typer.echo(f"  {choice.name:<12}{choice.description}")


def main() -> None:
    app()
