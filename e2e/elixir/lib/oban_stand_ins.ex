# Stand-ins for the few pieces of Elixir Oban 2.23 whose names end up in the database: the job
# struct workers match on, and the exceptions whose banners become error entries. They carry the
# same names as Oban's so that the error texts this peer writes read exactly like a real Elixir
# node's (`** (Oban.PerformError) BadgeForge.PrintCenter failed with ...`). This program is not
# Oban and never runs next to it.

defmodule Oban.Job do
  @moduledoc "A row of `oban_jobs`, with the fields of Oban's own `%Oban.Job{}`."

  defstruct [
    :id,
    :state,
    :queue,
    :worker,
    :attempt,
    :max_attempts,
    :priority,
    :attempted_by,
    :attempted_at,
    :inserted_at,
    :scheduled_at,
    :completed_at,
    :discarded_at,
    :cancelled_at,
    :unsaved_error,
    args: %{},
    meta: %{},
    tags: [],
    errors: []
  ]

  @type t :: %__MODULE__{}

  @timestamps ~w(attempted_at inserted_at scheduled_at completed_at discarded_at cancelled_at)a

  @doc "Builds a job from a row selected as `row_to_json(oban_jobs)`."
  @spec from_json(map()) :: t()
  def from_json(%{} = row) do
    fields =
      for field <- Map.keys(%__MODULE__{}) -- [:__struct__, :unsaved_error],
          Map.has_key?(row, Atom.to_string(field)) do
        {field, cast(field, Map.fetch!(row, Atom.to_string(field)))}
      end

    struct!(__MODULE__, fields)
  end

  # Columns are `timestamp without time zone` holding UTC (protocol §1.3).
  defp cast(field, value) when field in @timestamps and is_binary(value) do
    value |> NaiveDateTime.from_iso8601!() |> DateTime.from_naive!("Etc/UTC")
  end

  defp cast(_field, value), do: value
end

defmodule Oban.PerformError do
  @moduledoc "Wraps `{:error, reason}`, `{:cancel, reason}` and `:discard` results, as Oban does."
  defexception [:message, :reason]

  @impl Exception
  def exception({worker, reason}) do
    %__MODULE__{message: "#{inspect(worker)} failed with #{inspect(reason)}", reason: reason}
  end
end

defmodule Oban.CrashError do
  @moduledoc "Wraps throws and exits raised by a worker, as Oban does."
  defexception [:message, :reason]

  @impl Exception
  def exception({kind, reason, stacktrace}) do
    %__MODULE__{message: Exception.format_banner(kind, reason, stacktrace), reason: reason}
  end
end
