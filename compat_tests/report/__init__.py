"""Reading, merging and diffing reports; the end-of-run table, the Markdown summary and the HTML page. Runs
without torch, timm or transformers."""
