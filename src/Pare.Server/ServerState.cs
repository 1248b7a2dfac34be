namespace Pare.Server;

/// <summary>What the endpoints share: options, models, slots.</summary>
internal sealed class ServerState(ServerOptions options, IReadOnlyList<ServedModel> models)
{
    public ServerOptions Options { get; } = options;
    public IReadOnlyList<ServedModel> Models { get; } = models;
    public SlotPool Slots { get; } = new(options);

    readonly Lock _gate = new();
    long _completed, _cancelled;
    double _releaseMsMax;

    /// <summary>A request ended; for a client that went away, how long from its disconnect to its slot being free.</summary>
    public void Finished(double? releaseMsAfterAbort)
    {
        lock (_gate)
        {
            if (releaseMsAfterAbort is double ms) { _cancelled++; _releaseMsMax = Math.Max(_releaseMsMax, ms); }
            else _completed++;
        }
    }

    /// <summary>Slot and request counters (GET /slots).</summary>
    public object Stats()
    {
        lock (_gate)
            return new
            {
                total_slots = Slots.Total, slots_processing = Slots.Busy, slots_waiting = Slots.Waiting,
                requests_completed = _completed, requests_cancelled = _cancelled, cancel_release_ms_max = _releaseMsMax,
            };
    }

    /// <summary>The requested model; no name = the first one; an unknown name is a 400.</summary>
    public ServedModel Find(string? id)
    {
        if (string.IsNullOrEmpty(id)) return Models[0];
        foreach (var m in Models)
            if (m.Id == id || m.Model.Source == id) return m;
        throw ApiError.BadRequest($"unknown model '{(id.Length > 80 ? id[..80] + "..." : id)}' (this server has: {string.Join(", ", Models.Select(m => m.Id))})", "model");
    }
}
