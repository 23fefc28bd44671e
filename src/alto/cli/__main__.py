"""``python -m alto.cli``: the ``alto`` command."""

from alto.cli._main import main

if __name__ == "__main__":
    main()
