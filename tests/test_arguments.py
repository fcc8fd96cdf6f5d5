

# -- the resubmit history at the edges -------------------------------------------------------
def test_http_and_cli_show_what_each_attempt_ran_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    (tmp_path / "history_tasks.py").write_text(
        textwrap.dedent(
            """
            import conveyor

            app = conveyor.App()

            @app.task(max_attempts=1)
            def send(to, subject="hi"):
                if to.endswith("@bad"):
                    raise ConnectionError("no route to " + to)
                return "sent"
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVEYOR_URL", url)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("history_tasks", None)
    runner = CliRunner()
    out = runner.invoke(main, ["enqueue", "history_tasks:app", "send", "--args", '["a@bad"]', "--json"])
    job_id = json.loads(out.stdout)["id"]
    runner.invoke(main, ["process", "history_tasks:app"])
    app = conveyor.App(url)
    app.declare("send")
    app.resubmit(job_id, args=["b@good"], kwargs={"subject": "Again"})
    runner.invoke(main, ["process", "history_tasks:app"])

    shown = runner.invoke(main, ["jobs", "show", job_id, "--json"])
    data = json.loads(shown.stdout)
    assert (data["attempt"], data["prior_attempts"], data["status"]) == (2, 1, "completed")
    assert [(a["attempt"], a["args"], a["kwargs"]) for a in data["attempts"]] == [
        (1, ["a@bad"], {}),
        (2, ["b@good"], {"subject": "Again"}),
    ]
    text = runner.invoke(main, ["jobs", "show", job_id]).stdout
    assert "'a@bad'" in text and "'b@good', subject='Again'" in text
    assert "2/3 (1 before the resubmit)" in text

    with (
        serving(create_app(app, [KEY])) as base_url,
        httpx.Client(base_url=base_url, headers={"x-api-key": KEY}, timeout=30) as client,
    ):
        body = client.get(f"/api/jobs/{job_id}").json()
    assert body["prior_attempts"] == 1
    assert [(a["attempt"], a["args"], a["kwargs"]) for a in body["attempts"]] == [
        (1, ["a@bad"], {}),
        (2, ["b@good"], {"subject": "Again"}),
    ]
    app.close()
