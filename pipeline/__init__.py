"""The layer client, server, training and bench share: the wire protocol and its meters, and the
Sender and Receiver that string the codec and the models together (see docs/architecture.md)."""
