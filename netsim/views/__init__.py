"""Pictures of a run: the timeline in the terminal, the live progress, the trace for
Perfetto and the HTML report.

Each reads a run the way a user can keep it: the terminal timeline and the HTML report
draw the JSON result (``_picture``), so that ``netsim report RESULT.json`` draws later
what ``run`` drew; the trace and the live progress follow the typed events of
``netsim.events`` as the run goes. They sit above netsim.report, whose figures they
share, and below the session and the CLI, which ask for them.
"""
