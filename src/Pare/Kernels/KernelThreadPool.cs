using System.Diagnostics;

namespace Pare.Kernels;

/// <summary>
/// A small persistent pool for kernels: the caller plus up to <c>threads - 1</c> workers pull chunk indices from one
/// shared counter. Work is a function pointer plus a pointer to an unmanaged context on the caller's stack, so a
/// call allocates nothing. Workers spin briefly after a job (decode issues one matrix product after another), then
/// sleep on a semaphore. If another thread is already using the pool, the call runs single-threaded instead of waiting.
/// </summary>
/// <remarks>
/// The caller never waits for a worker that has not started: a worker joins a job by incrementing <c>_busy</c> and
/// then checking that the job is still open; the caller, once every chunk is claimed, closes the job and waits only
/// for workers inside it. On a loaded machine a descheduled worker therefore costs nothing but its own chunk.
/// </remarks>
internal sealed unsafe class KernelThreadPool
{
    public static KernelThreadPool Shared { get; } = new();

    // How long an idle worker spins before it sleeps: long enough to bridge the small ops between matrix products.
    static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 us

    readonly Lock _gate = new();
    Worker[] _workers = [];

    // The current job; written by the caller before the job is opened.
    delegate*<void*, int, void> _fn;
    void* _ctx;
    int _chunks;
    int _next;
    int _open;       // 1 while workers may join the current job
    int _busy;       // workers inside the current job
    long _generation; // bumped for every job, so an idle worker sees that a new one started
    Exception? _error;

    /// <summary>Runs <c>fn(ctx, i)</c> for every i in [0, chunks) on up to <paramref name="threads"/> threads, and returns when all are done.</summary>
    public void Run(delegate*<void*, int, void> fn, void* ctx, int chunks, int threads)
    {
        int helpers = Math.Min(threads, chunks) - 1;
        if (helpers <= 0 || !_gate.TryEnter())
        {
            for (int i = 0; i < chunks; i++) fn(ctx, i);
            return;
        }
        try
        {
            EnsureWorkers(helpers);
            _fn = fn; _ctx = ctx; _chunks = chunks; _next = 0; _error = null;
            Volatile.Write(ref _open, 1);
            Interlocked.Increment(ref _generation);
            for (int i = 0; i < helpers; i++) _workers[i].Wake();
            Execute();
            // Every chunk is claimed: close the job, then wait for the workers that joined it.
            Interlocked.Exchange(ref _open, 0);
            var spin = new SpinWait();
            while (Volatile.Read(ref _busy) != 0) spin.SpinOnce(sleep1Threshold: -1);
            if (_error is { } e) throw new InvalidOperationException("a kernel worker failed", e);
        }
        finally
        {
            _fn = null; _ctx = null;
            _gate.Exit();
        }
    }

    void Execute()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _chunks)
        {
            try { _fn(_ctx, i); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
        }
    }

    /// <summary>A worker's part of the current job, if it is still open.</summary>
    void Join()
    {
        Interlocked.Increment(ref _busy);
        if (Volatile.Read(ref _open) == 1) Execute();
        Interlocked.Decrement(ref _busy);
    }

    void EnsureWorkers(int n)
    {
        if (_workers.Length >= n) return;
        var grown = new Worker[n];
        Array.Copy(_workers, grown, _workers.Length);
        for (int i = _workers.Length; i < n; i++) grown[i] = new Worker(this, i);
        _workers = grown;
    }

    sealed class Worker
    {
        readonly KernelThreadPool _pool;
        readonly SemaphoreSlim _wake = new(0);
        long _seen;    // the last generation this worker joined
        int _sleeping; // 1 while the worker is (about to be) blocked on _wake

        public Worker(KernelThreadPool pool, int index)
        {
            _pool = pool;
            _seen = Volatile.Read(ref pool._generation);
            var t = new Thread(Loop) { IsBackground = true, Name = $"Pare kernel worker {index}" };
            t.Start();
        }

        public void Wake()
        {
            if (Interlocked.Exchange(ref _sleeping, 0) == 1) _wake.Release();
        }

        bool NewJob() => Volatile.Read(ref _pool._generation) != _seen;

        void Loop()
        {
            while (true)
            {
                WaitForJob();
                _seen = Volatile.Read(ref _pool._generation);
                _pool.Join();
            }
        }

        void WaitForJob()
        {
            long until = Stopwatch.GetTimestamp() + SpinTicks;
            while (!NewJob())
            {
                if (Stopwatch.GetTimestamp() < until) { Thread.SpinWait(20); continue; }
                // Sleep protocol: announce, re-check, block. Wake() clears _sleeping before releasing, so if the
                // exchange below finds it already cleared, a release is on its way and must be consumed.
                Interlocked.Exchange(ref _sleeping, 1);
                if (NewJob() && Interlocked.Exchange(ref _sleeping, 0) == 1) return;
                _wake.Wait();
                until = Stopwatch.GetTimestamp() + SpinTicks;
            }
        }
    }
}
