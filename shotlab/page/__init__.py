"""The explanation page: `shotlab explain app RUN_OR_BUNDLE` (docs/explain.md, "The page").

A local Streamlit page over one bundle: drop in an input (an image, a clip, a comment or a post,
each one entry of `panels.PANELS`), see the decision per policy category with its threshold and
review band, the Grad-CAM (and on request IG, LIME, SHAP) over the input or the words highlighted
by attribution, with their faithfulness scores, and open a stored decision by id, read-only.

    model.py      the bundle, its runner and the explain source, loaded once per process
    deciding.py   one input -> the decision record `shotlab predict` writes, and the bars
    explaining.py maps, faithfulness and the sanity check through `shotlab.explain`
    stored.py     a decision of the explanation store, read-only
    panels.py     the table of input kinds the page can show (input widget, explanation view)
    view.py       the Streamlit page itself; script.py is the file Streamlit runs
    launch.py     the server settings (loopback, no telemetry, upload limit) and the start

The page is a layer beside `serve`: it uses export's decision record, explain and the runtime,
and nothing above it imports it but the CLI wiring. Nothing here imports streamlit at module
level except view.py and script.py, which only the running page loads.
"""
