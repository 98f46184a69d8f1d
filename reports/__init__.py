"""Reports: views of a campaign record.

``render`` makes the ISO/IEC 17025 test report (HTML from Jinja2 templates, PDF/A-3b with
the record and the pack manifest attached), ``sign`` applies the lab's PAdES signature (or a
development one), ``verify`` checks a signed report end to end, ``junit`` writes JUnit XML
for CI, ``charts`` draws the pictures. A report is made from the record alone; nothing here
talks to a bench.
"""
