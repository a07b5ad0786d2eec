"""Why the SDRM-style MMD penalty of the attacks run collapses its nets: the estimator's bias.

Usage::

    python examples/mmd_estimator_bias.py --data-dir ../shared/data

The attacks run's MMD penalty (``PenalisedClassifier``, ``wobbledetect.lab.train.mmd2``)
compares, per batch of 128, the poisoned rows' representations with the clean rows' at
every ReLU. With T3's 250 poisons in 60,000 images a batch holds 0.53 poisons on average,
so a batch that holds any mostly holds one. This prints the penalty's size on an
untrained FashionCNN for 1, 2, 8 and 64 poisoned rows of 128, with the trigger stamped and
without it (the same rows, clean): with one row the biased MMD² is almost all bias (the
sample's own kernel value), and a net lowers it only by making every row alike.
"""

import argparse

import torch

from wobbledetect.lab import get_trigger
from wobbledetect.lab.nets import FashionCNN
from wobbledetect.lab.train import mmd2
from wobbledetect.lab.zoo import load_lab_data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="where fashion-mnist/ lies (as for `reproduce`)")
    args = parser.parse_args(argv)
    X = torch.tensor(load_lab_data("fashion-mnist", data_dir=args.data_dir).X_train[:128])
    torch.manual_seed(0)
    net = FashionCNN().train()
    activations = []
    for module in net.modules():
        if isinstance(module, torch.nn.ReLU):
            module.register_forward_hook(lambda _module, _inputs, output: activations.append(output))
    trigger = get_trigger("square")
    for k in (1, 2, 8, 64):
        stamped = X.clone()
        stamped[:k] = torch.as_tensor(trigger(X[:k].numpy()))
        poisoned = torch.zeros(len(X), dtype=torch.bool)
        poisoned[:k] = True
        sums = []
        for batch in (stamped, X):
            activations.clear()
            with torch.no_grad():
                net(batch)
                sums.append(sum(float(mmd2(h[~poisoned], h[poisoned])) for h in activations))
        print(f"{k:3d} poisoned rows of {len(X)}: sum over {len(activations)} ReLUs of MMD² = {sums[0]:.3f}; "
              f"the same rows without the trigger: {sums[1]:.3f}")


if __name__ == "__main__":
    main()
