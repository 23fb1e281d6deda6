/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  One place that asks the postmaster for toms' shared memory.
 *
 *	  Parts call toms_shmem_register() from their *_init() while the
 *	  library is being preloaded.  shmem_request_hook reserves the sum of
 *	  the sizes and one LWLock tranche ("toms") holding every part's locks;
 *	  shmem_startup_hook then calls each part's startup callback with
 *	  AddinShmemInitLock held, where the part uses ShmemInitStruct() under
 *	  its own name.  Locking rules for each structure are documented in the
 *	  file that owns it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "toms.h"

#define TOMS_MAX_SHMEM_PARTS 16

typedef struct ShmemPart
{
	Size		size;
	toms_shmem_startup_cb startup;
} ShmemPart;

static ShmemPart parts[TOMS_MAX_SHMEM_PARTS];
static int	nparts = 0;
static int	nlocks_total = 0;
static LWLockPadded *locks = NULL;


int
toms_shmem_register(Size size, int nlocks, toms_shmem_startup_cb startup)
{
	int			base = nlocks_total;

	if (!process_shared_preload_libraries_in_progress)
		elog(ERROR, "toms shared memory can only be requested at preload");
	if (nparts >= TOMS_MAX_SHMEM_PARTS)
		elog(ERROR, "too many toms shared memory parts");
	parts[nparts].size = size;
	parts[nparts].startup = startup;
	nparts++;
	nlocks_total += nlocks;
	return base;
}

LWLock *
toms_lwlock(int index)
{
	Assert(index >= 0 && index < nlocks_total);
	if (locks == NULL)
		locks = GetNamedLWLockTranche("toms");
	return &locks[index].lock;
}

/* shmem_request_hook (hooks.c) */
void
toms_shmem_request(void)
{
	Size		total = 0;
	int			i;

	for (i = 0; i < nparts; i++)
		total = add_size(total, MAXALIGN(parts[i].size));
	RequestAddinShmemSpace(total);
	if (nlocks_total > 0)
		RequestNamedLWLockTranche("toms", nlocks_total);
}

/* shmem_startup_hook (hooks.c) */
void
toms_shmem_startup(void)
{
	int			i;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (i = 0; i < nparts; i++)
		if (parts[i].startup)
			parts[i].startup();
	LWLockRelease(AddinShmemInitLock);
}
