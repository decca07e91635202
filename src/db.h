/*
 * db.h - the state store's database layer: prepared statements over
 * SQLite (db_sqlite.c) or PostgreSQL (db_pg.c), so the state files write
 * each statement once.  Only src/state*.c and src/db*.c include it.
 *
 * The surface is SQLite's, the one the state files were written against:
 * prepare, bind by 1-based index, step to a row or to the end, read
 * columns, reset and run again, finalize.  SQL is written with ?N
 * parameters (the PostgreSQL backend turns them into $N).
 *
 * Text bound with retl_db_bind_text is borrowed: it must outlive the
 * statement's next step (SQLite's SQLITE_STATIC).  Column text is valid
 * until the next step, reset or finalize of the statement.
 *
 * The dialect differences the state files cannot avoid are asked here
 * (retl_db_begin's modes, struct retl_db's upsert_only) rather than
 * spelled as string hacks in the SQL; state.c's header lists them all.
 */
#ifndef RETL_DB_H
#define RETL_DB_H

#include <stdint.h>

typedef struct retl_db retl_db;
typedef struct retl_db_stmt retl_db_stmt;

/* what retl_db_step returns */
#define RETL_DB_ROW 1
#define RETL_DB_DONE 0
#define RETL_DB_ERROR (-1)

/* what failed, for the exit code (state_int.h retl_state__code) */
enum retl_db_kind {
	RETL_DB_OK = 0,
	RETL_DB_EOTHER,         /* a statement the store refused (setup) */
	RETL_DB_ECONSTRAINT,    /* a unique key taken */
	RETL_DB_ECORRUPT,       /* the file or the data is damaged */
	RETL_DB_EFULL,          /* no room left */
	RETL_DB_EIO,            /* I/O failed, or the connection was lost */
	RETL_DB_EPERM,          /* a grant or the file's modes refuse it */
};

/* how a transaction begins */
enum retl_db_begin {
	RETL_DB_WRITE,          /* takes the write lock at once */
	RETL_DB_SNAPSHOT,       /* several reads see one snapshot */
};

struct retl_db_ops {
	const char *name;
	int (*prepare)(retl_db *db, const char *sql, retl_db_stmt **out);
	void (*bind_int64)(retl_db_stmt *s, int i, int64_t v);
	void (*bind_double)(retl_db_stmt *s, int i, double v);
	void (*bind_text)(retl_db_stmt *s, int i, const char *v, int len);
	void (*bind_null)(retl_db_stmt *s, int i);
	int (*step)(retl_db_stmt *s);
	int (*col_null)(retl_db_stmt *s, int i);
	int64_t (*col_int64)(retl_db_stmt *s, int i);
	double (*col_double)(retl_db_stmt *s, int i);
	const char *(*col_text)(retl_db_stmt *s, int i);
	int (*col_bytes)(retl_db_stmt *s, int i);
	void (*reset)(retl_db_stmt *s);
	void (*finalize)(retl_db_stmt *s);
	int (*exec)(retl_db *db, const char *sql);
	int (*begin)(retl_db *db, enum retl_db_begin mode);
	int64_t (*changes)(retl_db *db);
	int (*in_txn)(retl_db *db);
	const char *(*errmsg)(retl_db *db);
	enum retl_db_kind (*errkind)(retl_db *db);
	void (*close)(retl_db *db);
};

/* each backend's handle and statement start with these */
struct retl_db {
	const struct retl_db_ops *ops;
	int upsert_only;        /* a failed statement spoils the transaction
				 * (PostgreSQL): never try an INSERT that may
				 * collide, write ON CONFLICT instead */
};
struct retl_db_stmt {
	retl_db *db;
};

static inline int retl_db_prepare(retl_db *db, const char *sql,
				  retl_db_stmt **out)
{
	return db->ops->prepare(db, sql, out);
}
static inline void retl_db_bind_int64(retl_db_stmt *s, int i, int64_t v)
{
	s->db->ops->bind_int64(s, i, v);
}
static inline void retl_db_bind_int(retl_db_stmt *s, int i, int v)
{
	s->db->ops->bind_int64(s, i, v);
}
static inline void retl_db_bind_double(retl_db_stmt *s, int i, double v)
{
	s->db->ops->bind_double(s, i, v);
}
/* len < 0: up to the NUL */
static inline void retl_db_bind_textn(retl_db_stmt *s, int i, const char *v,
				      int len)
{
	s->db->ops->bind_text(s, i, v, len);
}
static inline void retl_db_bind_null(retl_db_stmt *s, int i)
{
	s->db->ops->bind_null(s, i);
}
static inline int retl_db_step(retl_db_stmt *s)
{
	return s->db->ops->step(s);
}
static inline int retl_db_col_null(retl_db_stmt *s, int i)
{
	return s->db->ops->col_null(s, i);
}
static inline int64_t retl_db_col_int64(retl_db_stmt *s, int i)
{
	return s->db->ops->col_int64(s, i);
}
static inline int retl_db_col_int(retl_db_stmt *s, int i)
{
	return (int)s->db->ops->col_int64(s, i);
}
static inline double retl_db_col_double(retl_db_stmt *s, int i)
{
	return s->db->ops->col_double(s, i);
}
/* NULL for SQL NULL */
static inline const char *retl_db_col_text(retl_db_stmt *s, int i)
{
	return s->db->ops->col_text(s, i);
}
static inline int retl_db_col_bytes(retl_db_stmt *s, int i)
{
	return s->db->ops->col_bytes(s, i);
}
static inline void retl_db_reset(retl_db_stmt *s)
{
	s->db->ops->reset(s);
}
/* NULL is fine */
static inline void retl_db_finalize(retl_db_stmt *s)
{
	if (s)
		s->db->ops->finalize(s);
}
/* a script of statements without parameters: 0 or -1 */
static inline int retl_db_exec(retl_db *db, const char *sql)
{
	return db->ops->exec(db, sql);
}
static inline int retl_db_begin(retl_db *db, enum retl_db_begin mode)
{
	return db->ops->begin(db, mode);
}
/* rows changed by the last statement */
static inline int64_t retl_db_changes(retl_db *db)
{
	return db->ops->changes(db);
}
static inline int retl_db_in_txn(retl_db *db)
{
	return db->ops->in_txn(db);
}
static inline const char *retl_db_errmsg(retl_db *db)
{
	return db->ops->errmsg(db);
}
static inline enum retl_db_kind retl_db_errkind(retl_db *db)
{
	return db->ops->errkind(db);
}
static inline void retl_db_close(retl_db *db)
{
	if (db)
		db->ops->close(db);
}

/*
 * db_sqlite.c: opens path (flags: SQLite's open flags); on failure *out
 * may hold a handle whose errmsg says why (close it), or NULL and the
 * return is SQLite's code.  busy_ms: how long a locked file is waited for.
 */
int retl_db_sqlite_open(retl_db **out, const char *path, int flags,
			int busy_ms);
/* db_pg.c: connects to the libpq connection string; on failure *out
 * holds a handle whose errmsg says why (close it) */
int retl_db_pg_open(retl_db **out, const char *conninfo);

#endif
