using Pare.Models;
using Pare.Speculative;

namespace Pare.Server;

/// <summary>One generation at a time per slot; it keeps a session (KV cache) per model for reuse.</summary>
internal sealed class Slot(int index, ServerOptions options)
{
    readonly Dictionary<ServedModel, (InferenceSession Session, StepRates? Rates)> _sessions = [];
    public int Index { get; } = index;

    /// <summary>The slot's session for the model, reset to an empty cache, and its running speculation rates.</summary>
    public (InferenceSession Session, StepRates? Rates) For(ServedModel model, SpeculativeOptions spec)
    {
        if (!_sessions.TryGetValue(model, out var s))
        {
            s = (model.Model.CreateSession(new SessionOptions { Threads = options.Threads, ContextLength = model.ContextLength, KvType = options.KvType }),
                options.Draft == "none" ? null : new StepRates(spec));
            _sessions[model] = s;
        }
        s.Session.Reset();
        return s;
    }
}

/// <summary>
/// N slots and a bounded queue in front of them: a request beyond N running + QueueLength waiting is refused at once
/// with 503 and Retry-After (never an unbounded backlog). Waiting and running are tied to the request's
/// cancellation token, so a client that goes away leaves the queue or frees its slot immediately.
/// </summary>
internal sealed class SlotPool
{
    readonly SemaphoreSlim _free;
    readonly Stack<Slot> _idle = new();
    readonly Lock _gate = new();
    readonly int _capacity;
    int _admitted;

    public SlotPool(ServerOptions options)
    {
        Total = options.Parallel;
        _capacity = options.Parallel + options.QueueLength;
        _free = new SemaphoreSlim(options.Parallel, options.Parallel);
        for (int i = options.Parallel - 1; i >= 0; i--) _idle.Push(new Slot(i, options));
    }

    public int Total { get; }
    public int Busy { get { lock (_gate) return Total - _idle.Count; } }
    public int Waiting => Math.Max(0, Volatile.Read(ref _admitted) - Busy);

    public async Task<Lease> AcquireAsync(CancellationToken ct)
    {
        if (Interlocked.Increment(ref _admitted) > _capacity)
        {
            Interlocked.Decrement(ref _admitted);
            throw new ApiError(503, "the server is busy: all slots are taken and the queue is full; retry later", "unavailable_error") { RetryAfter = 1 };
        }
        try
        {
            await _free.WaitAsync(ct);
        }
        catch
        {
            Interlocked.Decrement(ref _admitted);
            throw;
        }
        Slot slot;
        lock (_gate) slot = _idle.Pop();
        return new Lease(this, slot);
    }

    void Release(Slot slot)
    {
        lock (_gate) _idle.Push(slot);
        _free.Release();
        Interlocked.Decrement(ref _admitted);
    }

    public sealed class Lease(SlotPool pool, Slot slot) : IDisposable
    {
        int _done;
        public Slot Slot { get; } = slot;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) pool.Release(Slot);
        }
    }
}
