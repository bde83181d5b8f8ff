defmodule Peer.Out do
  @moduledoc """
  Output for whoever drives this program: one JSON object per line on stdout, each with an
  `"event"` key (the machine-readable record), and human log lines on stderr.
  """

  alias Peer.JSON

  @doc "Writes `{\"event\": name, ...fields}` as one stdout line."
  @spec event(String.t(), map()) :: :ok
  def event(name, fields \\ %{}) do
    # "event" first, for people reading the stream; the other keys in map order.
    "{" <> rest = JSON.encode!(fields)
    separator = if rest == "}", do: "", else: ","
    IO.puts(~s({"event":) <> JSON.encode!(name) <> separator <> rest)
  end

  @doc "Writes a log line to stderr."
  @spec log(String.t()) :: :ok
  def log(message) do
    time = DateTime.utc_now() |> DateTime.truncate(:millisecond) |> DateTime.to_iso8601()
    IO.puts(:stderr, "#{time} [elixir-peer] #{message}")
  end
end
