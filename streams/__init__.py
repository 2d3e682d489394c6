"""Stream processing: pure case logic and SLA clocks, and the Faust worker shell around them."""
