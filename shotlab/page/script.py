"""The file Streamlit runs for `shotlab explain app` (once per browser session and interaction).

Everything is in `shotlab.page.view`; this file only calls it, because Streamlit runs a script
file, not a function. Nothing imports this module.
"""

from shotlab.page.view import main

main()
