"""``python -m fedmarket``: the same command line as the ``fedmarket`` console script
(pyproject's ``[project.scripts]``), for environments where the script is not on PATH."""

from fedmarket.cli import app

if __name__ == "__main__":
    app()
