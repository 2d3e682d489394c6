"""Stream processing: pure case logic and SLA clocks, and the Faust worker shell around them."""

from streams.native import choose

FORM = choose()  # "compiled" or why the Python sources run (streams/native.py)
