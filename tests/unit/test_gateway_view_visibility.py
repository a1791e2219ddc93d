"""Which models a key may call, as the gateway's view works it out once per view: the public
ones and its customer's private ones; another customer's private model is as absent as none."""

from hashgrid.contracts.gateway import GatewayView, RoutedModel
from hashgrid.gateway.view import View


def model(name: str, customer_id: str | None = None) -> RoutedModel:
    return RoutedModel(name=name, deployment=f"d-{name}", replicas=[], customer_id=customer_id)


VIEW = View.of(
    GatewayView(
        revision=1,
        models=[
            model("zeta"),
            model("alpha"),
            model("a-tuned", "a"),
            model("b-other", "b"),
            model("b-only", "b"),
        ],
        keys=[],
    )
)


def test_a_customer_may_call_the_public_models_and_its_own_private_ones() -> None:
    assert VIEW.names_for("a") == ["a-tuned", "alpha", "zeta"]
    assert VIEW.names_for("b") == ["alpha", "b-only", "b-other", "zeta"]
    assert VIEW.model_for("a", "a-tuned") is VIEW.models["a-tuned"]
    assert VIEW.model_for("b", "alpha") is VIEW.models["alpha"]


def test_another_customers_private_model_is_as_absent_as_a_missing_one() -> None:
    assert VIEW.model_for("b", "a-tuned") is None
    assert VIEW.model_for("a", "b-only") is None
    assert VIEW.model_for("a", "no-such") is None


def test_a_customer_with_no_private_model_may_call_the_public_ones_only() -> None:
    assert VIEW.names_for("c") == VIEW.public == ("alpha", "zeta")
    assert VIEW.model_for("c", "a-tuned") is None
    assert VIEW.private == {"a": ("a-tuned",), "b": ("b-only", "b-other")}


def test_an_empty_view_lets_no_one_call_anything() -> None:
    empty = View()
    assert empty.names_for("a") == ()
    assert empty.model_for("a", "alpha") is None
