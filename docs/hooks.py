"""mkdocs hooks: pages made from the code and the repository at build time, so they cannot drift.

- cli-reference.md: every command's --help, from its parser (landscape.cli.main.reference);
- reproduction.md: REPRODUCTION.md, the report `landscape reproduce` writes at the repository's root;
- figures/: the repository's figures and tables (PNG, CSV, JSON), which the pages link to.
"""

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]


def on_files(files, config):
    files.append(File.generated(config, "reproduction.md", content=(REPO / "REPRODUCTION.md").read_text()))
    for path in sorted((REPO / "figures").rglob("*")):  # the figures and tables the pages link to, as they are
        if path.is_file():
            files.append(File(str(path.relative_to(REPO)), src_dir=str(REPO), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "cli-reference.md":
        from landscape.cli.main import reference

        return markdown.replace("<!-- generated: landscape.cli.main.reference() -->", reference())
    return markdown
