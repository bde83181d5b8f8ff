-- Test clusters (`TempPostgres::create_login_role`): creates a role that logs in with a password.
-- Its name and password are the session settings oban_testing.role and oban_testing.password,
-- given as connection options, so neither stands in statement text (which a log may show);
-- %I and %L quote them.
DO $$
BEGIN
  EXECUTE format(
    'CREATE ROLE %I LOGIN PASSWORD %L',
    current_setting('oban_testing.role'),
    current_setting('oban_testing.password')
  );
END
$$
