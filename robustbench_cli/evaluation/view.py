"""What `robust eval` runs on: a model, the attack specs and the identity columns a defense
adds to each row. A defense that acts at eval time (see defenses.registry) returns a
subclass that wraps the classifier and may annotate rows and print a report of its own."""

from dataclasses import dataclass, field


@dataclass
class EvalView:
    model: object  # torch.nn.Module: [0, 1] inputs -> logits
    specs: list  # AttackSpec
    identity: dict = field(default_factory=dict)

    def annotate(self, finished):
        """A finished row, with what this view adds to it (nothing by default)."""
        return finished

    def report(self, rows) -> None:
        """Anything to print beside the accuracy table (nothing by default)."""
