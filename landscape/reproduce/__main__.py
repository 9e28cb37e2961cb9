"""`python -m landscape.reproduce` = `landscape reproduce`. Guarded: importing this module (doctest collection,
`pkgutil.walk_packages`) must not start a reproduction."""

if __name__ == "__main__":
    from ..cli import run
    from ..cli.reproduce import main

    run(main, "landscape.reproduce")
