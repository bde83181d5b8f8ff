[inputs: ["peer.exs", "lib/**/*.ex"]]
