"""The README's main job runs end to end at a small size."""

from deepest import demo


def test_demo_trains_reintegrates_and_saves_its_figure(tmp_path, capsys):
    figure = tmp_path / "stability.png"
    demo.main(train_steps=3, figure=str(figure), num_points=32)
    printed = capsys.readouterr().out
    assert "outside Euler's stability region" in printed
    assert "rk4" in printed and "-2.785294" in printed
    assert figure.stat().st_size > 10_000
