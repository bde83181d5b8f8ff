defmodule BadgeForge do
  @moduledoc """
  The Elixir application's side of Badge Forge: it asks for badges by inserting jobs for the
  Rust worker `badge_forge.generator.GenerateBadge` on queue `badges`, as

      jobs = for attendee <- attendees do
        Oban.Job.new(%{id: ..., name: ..., company: ..., type: ...},
          worker: "badge_forge.generator.GenerateBadge", queue: :badges)
      end

      Oban.insert_all(jobs)

  would (max_attempts 20, Oban's default), and receives one `BadgeForge.PrintCenter` job per
  rendered badge back on queue `printing`.
  """

  alias Peer.Engine

  @worker "badge_forge.generator.GenerateBadge"
  @types ~w(attendee speaker sponsor organizer)

  # Given names and family names per script, joined the way each culture writes them.
  @people [
    {~w(Ada Grace Alan Linus Margaret Ken), ~w(Lovelace Hopper Turing Torvalds Hamilton Thompson),
     :western},
    {~w(José Zoë François Søren Åsa Jürgen),
     ~w(Álvarez Ølstad Müller Kierkegård Łukasik Gómez-Peña), :western},
    {["Thị Hương", "Văn Đức", "Minh Châu"], ~w(Nguyễn Trần Lê), :family_first_spaced},
    {~w(Αλέξανδρος Ελένη Δημήτρης Σοφία), ~w(Παπαδόπουλος Οικονόμου Γεωργίου Νικολάου), :western},
    {~w(Наталья Дмитрий Ольга Сергей), ~w(Шевченко Коваленко Бондаренко Ткаченко), :western},
    {~w(太郎 花子 健一 美咲), ~w(山田 佐藤 鈴木 高橋), :family_first},
    {~w(小明 秀英 伟 芳), ~w(王 李 张 刘), :family_first},
    {~w(민준 서연 지호 하은), ~w(김 이 박 최), :family_first},
    {~w(فاطمة محمد ليلى عمر), ~w(الزهراء العلي حداد منصور), :western},
    {~w(דוד שרה יעל משה), ~w(לוי כהן מזרחי פרץ), :western},
    {~w(प्रिया राहुल अनन्या), ~w(शर्मा वर्मा पटेल), :western}
  ]

  @companies [
    "Acme Corp",
    "Müller & Söhne GmbH",
    "Société Générale de Logiciel",
    "Łódź Data sp. z o.o.",
    "Ōkami Systems",
    "株式会社オーバン",
    "Ελληνική Πληροφορική",
    "ООО «Рога и копыта»",
    "شركة البرمجيات",
    "Dashbit",
    "Plataformatec",
    "O'Reilly & Associates"
  ]

  @doc """
  `enqueue_batch(n)`: n badge jobs in one `Oban.insert_all`. Names, companies and types come
  from the random generator (seed it with `:rand.seed/2` for a repeatable batch); ids are
  random v4 UUIDs either way. Returns the inserted jobs.
  """
  @spec enqueue_batch(GenServer.server(), non_neg_integer()) :: [Oban.Job.t()]
  def enqueue_batch(repo, n), do: insert(repo, Enum.map(1..n//1, fn _ -> badge_args() end))

  @doc """
  Inserts `n` good badge jobs together with one job per malformed case, in one batch.
  Returns `[{case, job}]`, the case being `"ok"` for the good ones.
  """
  @spec enqueue_bad(GenServer.server(), non_neg_integer()) :: [{String.t(), Oban.Job.t()}]
  def enqueue_bad(repo, n) do
    cases = Enum.map(1..n//1, fn _ -> {"ok", badge_args()} end) ++ bad_cases()
    jobs = insert(repo, Enum.map(cases, &elem(&1, 1)))
    Enum.zip(Enum.map(cases, &elem(&1, 0)), jobs)
  end

  @doc "The malformed jobs the Rust worker must discard with a clear error."
  @spec bad_cases() :: [{String.t(), map()}]
  def bad_cases do
    good = fn -> badge_args() end

    [
      {"missing_name", Map.delete(good.(), "name")},
      {"name_not_string", Map.put(good.(), "name", 42)},
      {"missing_type", Map.delete(good.(), "type")},
      {"unknown_type", Map.put(good.(), "type", "v/ip")},
      {"name_10kb", Map.put(good.(), "name", String.duplicate("Long Name ", 1024))},
      {"empty_name", Map.put(good.(), "name", "")},
      {"missing_id", Map.delete(good.(), "id")},
      {"control_chars", Map.put(good.(), "name", "Bad\u0007Name\u001b[31m")}
    ]
  end

  defp insert(repo, args_list) do
    jobs =
      for args <- args_list, do: %{args: args, worker: @worker, queue: "badges", max_attempts: 20}

    inserted = Engine.insert_all(repo, jobs)

    # ON CONFLICT DO NOTHING could skip rows; oban_jobs has no unique index, so none are.
    if length(inserted) != length(jobs),
      do: raise("inserted #{length(inserted)} of #{length(jobs)} jobs")

    # RETURNING gives rows in VALUES order in practice; match by args to not depend on it.
    by_args = Map.new(inserted, &{&1.args, &1})
    Enum.map(args_list, &Map.fetch!(by_args, &1))
  end

  defp badge_args do
    {given, family, style} = Enum.random(@people)
    {first, last} = {Enum.random(given), Enum.random(family)}

    name =
      case style do
        :western -> "#{first} #{last}"
        :family_first -> last <> first
        :family_first_spaced -> "#{last} #{first}"
      end

    %{
      "id" => uuid4(),
      "name" => name,
      "company" => Enum.random(@companies),
      "type" => Enum.random(@types)
    }
  end

  @doc "A random version 4 UUID, lower-case and hyphenated, as `Ecto.UUID.generate/0` makes."
  @spec uuid4() :: String.t()
  def uuid4 do
    <<a::48, _::4, b::12, _::2, c::62>> = :crypto.strong_rand_bytes(16)
    hex = Base.encode16(<<a::48, 4::4, b::12, 2::2, c::62>>, case: :lower)
    <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> = hex
    Enum.join([p1, p2, p3, p4, p5], "-")
  end
end
