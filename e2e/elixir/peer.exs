# The Elixir peer of the Badge Forge end-to-end tests: `elixir e2e/elixir/peer.exs <command>`.
# See README.md. The modules live under lib/; they are compiled in memory at every start (about
# a second), so there is nothing to build and no _build directory to share between runs.

files = Path.wildcard(Path.join(__DIR__, "lib/**/*.ex"))

case Kernel.ParallelCompiler.compile(files) do
  {:ok, _modules, _warnings} -> Peer.CLI.main(System.argv())
  {:error, _errors, _warnings} -> System.halt(1)
end
