"""Team automation: pull-request launches and their reports, Terraform for the team stack,
schedules, and the pieces containerised steps and per-step Python environments run on.

Modules (each imported on its own; nothing heavy at import time):

- ``comment``: ``LAUNCH: workflow key=value`` comments, parsed and checked;
- ``github``: the GitHub Actions workflows (PR launches, exported schedules);
- ``report``: a run's report in Markdown or HTML, compared against another run;
- ``files``: atomic writes shared by the modules that write files;
- ``infra``: the Terraform templates (``templates/terraform/<cloud>``);
- ``schedule`` and ``scheduler``: the schedule file and the loop that runs it;

Containerised steps and per-step Python environments live in ``qflow.runtime``
(``container``, ``pyenv``).
"""
