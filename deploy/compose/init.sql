-- Evaluation data for deploy/compose.yaml, run by the `init` service with sqlcmd on
-- both SQL Server containers:
--
--   sqlcmd -C -b -S <server> -U sa -v ROLE=publisher|subscriber VALIDATOR_PASSWORD=... -i init.sql
--
-- Both sides get the same rows; the subscriber then gets a known drift, as if
-- replication had lost, altered and invented a few rows:
--   dbo.Customer   3 rows missing, 3 changed, 1 extra
--   dbo.OrderLine  2 rows missing, 2 changed, 1 extra
-- It is idempotent: rows are seeded (and the drift applied) only into empty tables,
-- so restarting the stack leaves the data as it is.
SET NOCOUNT ON;
SET XACT_ABORT ON;
GO

IF DB_ID(N'Sales') IS NULL
    CREATE DATABASE Sales;
GO

-- The validator only reads. SELECT through db_datareader also grants the metadata
-- visibility driftwatch needs to introspect columns and keys.
IF SUSER_ID(N'validator') IS NULL
    CREATE LOGIN validator WITH PASSWORD = N'$(VALIDATOR_PASSWORD)', CHECK_POLICY = ON;
GO

USE Sales;
GO

IF DATABASE_PRINCIPAL_ID(N'validator') IS NULL
    CREATE USER validator FOR LOGIN validator;
ALTER ROLE db_datareader ADD MEMBER validator;
GO

IF OBJECT_ID(N'dbo.Customer', N'U') IS NULL
    CREATE TABLE dbo.Customer (
        CustomerID   int IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Customer PRIMARY KEY,
        Name         nvarchar(200)  NOT NULL,
        Email        nvarchar(320)  NULL,
        Region       nvarchar(16)   NOT NULL,
        Balance      decimal(19, 4) NOT NULL,
        ModifiedDate datetime2(7)   NOT NULL,
        Photo        varbinary(max) NULL
    );
GO

-- LineNo is a reserved word in T-SQL (LINENO): it has to be bracketed, which is
-- exactly what a generated script must get right.
IF OBJECT_ID(N'dbo.OrderLine', N'U') IS NULL
    CREATE TABLE dbo.OrderLine (
        OrderID      int            NOT NULL,
        [LineNo]     int            NOT NULL,
        CustomerID   int            NOT NULL,
        Product      nvarchar(100)  NOT NULL,
        Quantity     int            NOT NULL,
        UnitPrice    decimal(19, 4) NOT NULL,
        Note         nvarchar(max)  NULL,
        ModifiedDate datetime2(7)   NOT NULL,
        Attachment   varbinary(max) NULL,
        CONSTRAINT PK_OrderLine PRIMARY KEY (OrderID, [LineNo])
    );
GO

IF NOT EXISTS (SELECT 1 FROM dbo.Customer) AND NOT EXISTS (SELECT 1 FROM dbo.OrderLine)
BEGIN
    BEGIN TRANSACTION;

    -- 2000 customers with deterministic values: unicode names, NULLs, sub-second
    -- datetime2 precision, exact decimals, and binary values of every size class.
    -- ROW_NUMBER() is bigint, which DATEADD refuses: hence the cast to int.
    SET IDENTITY_INSERT dbo.Customer ON;
    WITH n AS (
        SELECT TOP (2000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS i
        FROM sys.all_objects a CROSS JOIN sys.all_objects b
    )
    INSERT INTO dbo.Customer (CustomerID, Name, Email, Region, Balance, ModifiedDate, Photo)
    SELECT
        i,
        CONCAT(CHOOSE(i % 5 + 1, N'Zoë', N'José', N'Łukasz', N'美咲', N'Ann'), N' Customer ', i),
        CASE WHEN i % 11 = 0 THEN NULL ELSE CONCAT(N'customer', i, N'@example.com') END,
        CHOOSE(i % 3 + 1, N'EU', N'US', N'APAC'),
        CAST(i * 12.3456 - 5000 AS decimal(19, 4)),
        DATEADD(SECOND, i * 37, CAST('2024-01-01T08:00:00.1234567' AS datetime2(7))),
        CASE WHEN i % 7 = 0 THEN NULL
             WHEN i % 50 = 0 THEN CAST(REPLICATE(CAST(CONCAT('large', i) AS varchar(max)), 2000) AS varbinary(max))
             ELSE CAST(HASHBYTES('SHA2_256', CONCAT('photo', i)) AS varbinary(max)) END
    FROM n;
    SET IDENTITY_INSERT dbo.Customer OFF;

    -- 5000 order lines: orders of 1 to 5 lines over the customers.
    WITH n AS (
        SELECT TOP (5000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS i
        FROM sys.all_objects a CROSS JOIN sys.all_objects b
    )
    INSERT INTO dbo.OrderLine (OrderID, [LineNo], CustomerID, Product, Quantity, UnitPrice, Note, ModifiedDate, Attachment)
    SELECT
        1000 + (i - 1) / 5,
        (i - 1) % 5 + 1,
        (i * 7) % 2000 + 1,
        CONCAT(N'Product ', i % 97),
        i % 9 + 1,
        CAST((i % 500) * 1.0001 + 0.99 AS decimal(19, 4)),
        CASE WHEN i % 13 = 0 THEN REPLICATE(CAST(N'note ñ ' AS nvarchar(max)), 1000)
             WHEN i % 4 = 0 THEN NULL ELSE N'' END,
        DATEADD(MILLISECOND, i * 1013, CAST('2024-02-01T00:00:00.0000001' AS datetime2(7))),
        CASE WHEN i % 17 = 0 THEN 0x ELSE NULL END
    FROM n;

    IF N'$(ROLE)' = N'subscriber'
    BEGIN
        -- Missing on the subscriber.
        DELETE FROM dbo.Customer WHERE CustomerID IN (17, 1234, 1999);
        DELETE FROM dbo.OrderLine WHERE (OrderID = 1010 AND [LineNo] = 3) OR (OrderID = 1500 AND [LineNo] = 1);

        -- Changed on the subscriber (one column each, of different types).
        UPDATE dbo.Customer SET Name = N'Zoë Changed' WHERE CustomerID = 42;
        UPDATE dbo.Customer SET Balance = Balance + 0.0001 WHERE CustomerID = 500;
        UPDATE dbo.Customer SET Photo = 0xDEADBEEF WHERE CustomerID = 777;
        UPDATE dbo.OrderLine SET Quantity = Quantity + 1 WHERE OrderID = 1020 AND [LineNo] = 2;
        UPDATE dbo.OrderLine SET ModifiedDate = DATEADD(NANOSECOND, 100, ModifiedDate)
            WHERE OrderID = 1300 AND [LineNo] = 4;

        -- Extra on the subscriber.
        SET IDENTITY_INSERT dbo.Customer ON;
        INSERT INTO dbo.Customer (CustomerID, Name, Email, Region, Balance, ModifiedDate, Photo)
        VALUES (5001, N'Only On Subscriber', NULL, N'EU', 0.0000, '2024-06-01T12:00:00.0000000', NULL);
        SET IDENTITY_INSERT dbo.Customer OFF;
        INSERT INTO dbo.OrderLine (OrderID, [LineNo], CustomerID, Product, Quantity, UnitPrice, Note, ModifiedDate, Attachment)
        VALUES (9999, 1, 5001, N'Phantom', 1, 1.0000, NULL, '2024-06-01T12:00:00.0000000', NULL);
    END;

    COMMIT TRANSACTION;
    PRINT CONCAT(N'Sales seeded as ', N'$(ROLE)');
END
ELSE
    PRINT N'Sales already seeded; left as it is';
GO
