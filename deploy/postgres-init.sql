-- Two databases on one server: the service's and Synapse's (Synapse needs C collation).
CREATE DATABASE synapse WITH TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
