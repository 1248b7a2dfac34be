namespace Pare.Server;

/// <summary>What the endpoints share: options, models, slots.</summary>
internal sealed class ServerState(ServerOptions options, IReadOnlyList<ServedModel> models)
{
    public ServerOptions Options { get; } = options;
    public IReadOnlyList<ServedModel> Models { get; } = models;
    public SlotPool Slots { get; } = new(options);

    /// <summary>The requested model; no name = the first one; an unknown name is a 400.</summary>
    public ServedModel Find(string? id)
    {
        if (string.IsNullOrEmpty(id)) return Models[0];
        foreach (var m in Models)
            if (m.Id == id || m.Model.Source == id) return m;
        throw ApiError.BadRequest($"unknown model '{(id.Length > 80 ? id[..80] + "..." : id)}' (this server has: {string.Join(", ", Models.Select(m => m.Id))})", "model");
    }
}
