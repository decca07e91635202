/*
 * test_salesforce_soql.c - the text retl builds for Salesforce from model
 * values: SOQL string literals (salesforce_lookup.c; SOQL and SOSL
 * Reference, "Quoted String Escape Sequences") and the lookup field a
 * relationship name stands for (salesforce_rel.c).
 */
#include <string.h>

#include "salesforce_int.h"
#include "test.h"

static void quoted(const char *in, size_t n, const char *want)
{
	retl_buf b = RETL_BUF_INIT;
	sf_soql_quote(in, n, &b);
	CHECK_STR(b.ptr, want);
	retl_buf_free(&b);
}

static void test_quote(void)
{
	quoted("ada@example.com", 15, "'ada@example.com'");
	quoted("o'brien", 7, "'o\\'brien'");
	quoted("back\\slash", 10, "'back\\\\slash'");
	quoted("say \"hi\"", 8, "'say \\\"hi\\\"'");
	quoted("a\nb\rc\td\be\ff", 11, "'a\\nb\\rc\\td\\be\\ff'");
	quoted("", 0, "''");
	/* no way out of the literal: a quote is always escaped */
	quoted("x') OR Id != null OR Email IN ('", 32,
	       "'x\\') OR Id != null OR Email IN (\\''");
	quoted("100%_é", 7, "'100%_é'");     /* LIKE's wildcards mean nothing to IN */
}

static void lookup(const char *rel, const char *want)
{
	retl_buf b = RETL_BUF_INIT;
	sf_lookup_name(rel, strlen(rel), &b);
	CHECK_STR(b.ptr, want);
	retl_buf_free(&b);
}

static void test_lookup_name(void)
{
	lookup("Account", "AccountId");
	lookup("ReportsTo", "ReportsToId");
	lookup("Parent_Account__r", "Parent_Account__c");
	lookup("ns__Thing__r", "ns__Thing__c");
}

int main(void)
{
	test_quote();
	test_lookup_name();
	TEST_DONE();
}
