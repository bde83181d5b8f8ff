defmodule BadgeForge.PrintCenter do
  @moduledoc """
  The worker for queue `printing`: one job per badge the Rust node rendered, args
  `{"id": badge id, "name": name, "path": absolute path of the PDF}`.

  A print is recorded durably in `print_log` (one row per badge id; `prints` counts every
  print, so a badge printed twice shows 2). Anything else is an error, recorded and retried by
  the producer exactly as Oban records it:
  - args that do not match (a missing key, a non-string value) raise `FunctionClauseError`;
  - a path that is not a readable PDF returns `{:error, reason}`, i.e. an `Oban.PerformError`.
  """

  alias Peer.{Engine, Out, Repo}

  # The application's repo; producers and jobs share it (see `Peer.Repo`).
  @repo BadgeForge.Repo

  @doc "Creates `print_log` if it does not exist."
  @spec setup(GenServer.server()) :: :ok
  def setup(repo) do
    Repo.simple!(repo, """
    CREATE TABLE IF NOT EXISTS print_log (
      id text PRIMARY KEY,
      name text NOT NULL,
      path text NOT NULL,
      prints integer NOT NULL,
      first_printed_at timestamp without time zone NOT NULL,
      last_printed_at timestamp without time zone NOT NULL
    )
    """)
  end

  @doc "Prints one badge."
  @spec perform(Oban.Job.t()) :: :ok | {:error, String.t()}
  def perform(%Oban.Job{args: %{"id" => id, "name" => name, "path" => path}} = job)
      when is_binary(id) and is_binary(name) and is_binary(path) do
    with :ok <- check_pdf(path) do
      prints = record_print(id, name, path)

      Out.event("printed", %{
        job_id: job.id,
        attempt: job.attempt,
        id: id,
        name: name,
        path: path,
        prints: prints
      })
    end
  end

  defp check_pdf(path) do
    case File.open(path, [:read, :binary], &IO.binread(&1, 5)) do
      {:ok, "%PDF-"} -> :ok
      {:ok, _other} -> {:error, "#{path} is not a PDF"}
      {:error, reason} -> {:error, "cannot open #{path}: #{:file.format_error(reason)}"}
    end
  end

  defp record_print(id, name, path) do
    sql = """
    INSERT INTO print_log AS p (id, name, path, prints, first_printed_at, last_printed_at) \
    VALUES ($1, $2, $3, 1, $4, $4) \
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, path = EXCLUDED.path, \
    prints = p.prints + 1, last_printed_at = EXCLUDED.last_printed_at \
    RETURNING p.prints\
    """

    now = Engine.now() |> DateTime.to_naive() |> NaiveDateTime.to_iso8601()
    %{rows: [[prints]]} = Repo.query!(@repo, sql, [id, name, path, now])
    prints
  end
end
