"""What a shipped model needs to run, without torch: the input contract and its kinds, the
bundle, the runners behind one table, and the decision rule. Imports only `shotlab.core`."""
