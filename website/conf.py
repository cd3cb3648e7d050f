"""Sphinx settings of the course's website (``python website/build.py`` passes ``-c website``)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent

project = "Normalizing Flows, hands-on"
author = "the course's authors"
copyright = "the course's authors, MIT licence"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The committed outputs are the pages: nothing is executed.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

# Everything a page loads is served from the site (no CDN): MathJax 3 and the
# ipywidgets HTML manager (website/vendor, see its README).
html_static_path = [str(HERE / "vendor"), str(HERE / "static")]
mathjax_path = "mathjax/tex-chtml.js"
nb_ipywidgets_js = {"html-manager/embed.js": {}}
# Before the widget renderer, so that its MathJax shim is in place when widgets render.
html_js_files = [("nf-site.js", {"priority": 200})]
html_css_files = ["nf-site.css"]

html_theme = "sphinx_book_theme"
html_title = "Normalizing Flows, hands-on"
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # an empty mode logs a console error
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
